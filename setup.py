"""Packaging: everything else is in pyproject.toml.

Only the package list lives here, because pyproject.toml cannot say "every
``osdconform*`` package, plus the repository's ``suites/`` folder as the
package ``osdconform._suites``".  That mapping makes a wheel carry the
conformance suites, so ``osdconform run`` works from an installed package, while
a clone keeps them in ``suites/`` (``python -m pytest suites`` is unchanged).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["osdconform", "osdconform.*"]) + ["osdconform._suites"],
    package_dir={"osdconform._suites": "suites"},
)
