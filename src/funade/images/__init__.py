"""OCI images of model versions: the Containerfile `funade build` writes (``containerfile``)
and the step that unpacks a baked-in package inside the build (``unpack``)."""
