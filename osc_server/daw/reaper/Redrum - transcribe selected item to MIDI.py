# Redrum - transcribe selected item to MIDI (ReaScript, Python). Install: see osc_server/daw/README.md.
import os
import sys

from reaper_python import *  # noqa: F401,F403

try:
    _here = os.path.dirname(os.path.realpath(__file__))
except NameError:  # older Reaper versions run scripts without __file__
    _here = os.path.dirname(RPR_get_action_context()[1])
if _here not in sys.path:
    sys.path.insert(0, _here)

import redrum_reaper  # noqa: E402

redrum_reaper.transcribe()
