"""presil: a pre-silicon framework for NPUs.

The top-level folders of the repository are the sub-packages of this namespace:
``golden/`` is ``presil.golden``, ``host/`` is ``presil.host``, ``tb/`` is ``presil.tb``.
"""

__version__ = "0.1.0"
