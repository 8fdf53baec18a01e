"""voip-callqual: streaming VoIP call-quality and anomaly detection.

Import root for the whole project. The design card fixes where the services
live (``services/collector``, ``services/detector``, ``services/alerter``) and
the wire models (``schemas/``); they appear here as ``callqual.collector``,
``callqual.detector``, ``callqual.alerter`` and ``callqual.schemas``.
"""

__version__ = "0.1.0"
