"""Package discovery for the one `presil` namespace over the top-level folders.

pyproject.toml holds all metadata; this file exists only because setuptools'
declarative `packages.find` cannot map folders to other package names, and the
generated register layer (host/regs/) has many sub-packages that a hand-written
list would let go stale.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {"presil": "presil", "presil.golden": "golden", "presil.host": "host", "presil.tb": "tb"}
# rtl/ is not Python: it travels as the data of presil._rtl (package data in
# pyproject.toml), so that an installed wheel can build the simulators
# (presil.rtl finds it there when there is no source checkout).
DATA_DIRS = {"presil._rtl": "rtl"}

packages = []
for package, folder in PACKAGE_DIRS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(package_dir={**PACKAGE_DIRS, **DATA_DIRS}, packages=packages + list(DATA_DIRS))
