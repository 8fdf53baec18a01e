"""The detector's stages as group members: the shared loop, and the source stage.

Wiring like ``detector.service`` (they read the transport seam); the rules themselves stay in
the pure core.
"""
