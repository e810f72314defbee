"""Which distributions provide a top-level module: funade reads `RECORD` as text where the
standard library's `packages_distributions()` builds an object of every installed file (slow
with many installed); both must give the same answer for what is installed here."""

from __future__ import annotations

import importlib.metadata

from funade.pipelines import codeorigin


def test_the_providers_of_every_top_level_module_are_the_standard_librarys() -> None:
    expected = {
        top: sorted(set(names))
        for top, names in importlib.metadata.packages_distributions().items()
    }
    found = {
        top: sorted({d.metadata["Name"] for d in dists})
        for top, dists in codeorigin._providers().items()
    }
    assert found == expected
    assert len(found) > 50  # the dev install: many distributions, some without top_level.txt


def test_a_module_no_distribution_is_named_after_is_found_by_its_files() -> None:
    assert codeorigin._distributions_of("sklearn") == ("scikit-learn",)
    assert codeorigin._distributions_of("yaml") == ("PyYAML",)
    assert "protobuf" in codeorigin._distributions_of("google")  # a namespace, many providers
    assert codeorigin._distributions_of("no_such_module_here") == ()
