"""Suite-wide settings: hypothesis profiles and the core backend under test.

``HYPOTHESIS_PROFILE=ci`` runs more examples; ``MESHAGENT_BACKEND=c|python`` (read by
``meshagent.core`` itself) picks the core backend for the whole run.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
