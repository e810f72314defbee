"""The model server: one registered model behind the Open Inference Protocol v2 and KServe v1."""
