"""voip-callqual: streaming VoIP call-quality and anomaly detection.

Import root for the whole project. The design card fixes where the services
live (``services/collector``, ``services/detector``, ``services/alerter``) and
the wire models (``schemas/``); they appear here as ``callqual.collector``,
``callqual.detector``, ``callqual.alerter`` and ``callqual.schemas``.
"""

# Before any submodule is imported: a compiled module (scripts/build-compiled) whose source has
# changed since the build must not be loaded (see compiled_guard).
from callqual import compiled_guard as _compiled_guard

_compiled_guard.install()

__version__ = "0.1.0"
