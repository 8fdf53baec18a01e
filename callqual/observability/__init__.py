"""What every service exposes about itself: one metric vocabulary and the ``/metrics`` server.

Shared by the collector, detector, alerter and store services, so none of them
imports another service to be observable.
"""
