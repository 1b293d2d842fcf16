"""Package discovery; everything else is declared in setup.cfg.

setup.cfg alone cannot say this: `find:` names a package after the folder it finds it in,
and the top-level `kernels/` must install as `tinyattn.kernels` (a top-level module named
`kernels` would clash with the unrelated `kernels` distribution on PyPI). So the packages
are discovered here, on both roots, and setup.cfg's `package_dir` maps `tinyattn.kernels`
to `kernels/`. Nothing is listed by hand: a new subpackage (with or without __init__.py)
is installed without anyone having to remember it. CI installs the built wheel and checks
that every source file made it (.ci/wheel_smoke.py).
"""
from setuptools import find_namespace_packages, setup

_SKIP = ["__pycache__", "*.__pycache__"]

packages = find_namespace_packages(include=["tinyattn", "tinyattn.*"], exclude=_SKIP)
packages += ["tinyattn.kernels"] + [
    f"tinyattn.kernels.{name}" for name in find_namespace_packages(where="kernels", exclude=_SKIP)
]

setup(packages=packages)
