"""Run the unchanged pysigsci CLI against a simulator instead of the real dashboard.

pysigsci has no flag or env var for its API host; its requests go to the class attribute
`SigSciApi.base_url` + "v0" + path, so pointing that attribute at the simulator is enough.
Usage: SIGSCI_SIM_URL=http://127.0.0.1:PORT python pysigsci_wrapper.py --get corp-sites
"""

import os
import runpy
import shutil
import sys

from pysigsci import sigsciapi

sim_url = os.environ.get("SIGSCI_SIM_URL")
cli = shutil.which("pysigsci")
if not sim_url or cli is None:
    sys.exit("pysigsci_wrapper: set SIGSCI_SIM_URL and put the venv's bin (with pysigsci) on PATH")
sigsciapi.SigSciApi.base_url = sim_url.rstrip("/") + "/api/"
runpy.run_path(cli, run_name="__main__")
