"""Where the public captures are: ``../shared/pcaps`` beside the checkout, as on CI.

``$CALLQUAL_SHARED_PCAPS`` overrides it.
"""

import os
from pathlib import Path

_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "pcaps"
PCAPS = Path(os.environ.get("CALLQUAL_SHARED_PCAPS") or _BESIDE_CHECKOUT)
