# -*- coding: utf-8 -*-
# Copyright: netkit.egress contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run netkit.egress modules the way Ansible does, many times in one process, inside the network
namespace this process was started in (``ip netns exec NS python module_worker.py``).

One JSON request per stdin line: ``{"module": "egress_gateway", "args": {...}, "check": false,
"diff": false, "binaries": {"nft": "/path/to/wrapper"}}``; one JSON answer per stdout line:
``{"result": {...}, "commands": [[argv...], ...], "writes": [...]}``. ``commands`` are the commands
the module ran, ``writes`` the files and sysctls it wrote, so a test can prove per case that a refused
input changed nothing. ``binaries`` swaps a host binary for a test wrapper (fault injection at the
lowest layer; the module code runs unchanged).
"""

import importlib
import json
import os
import sys
import tempfile

from ansible.module_utils import basic

from ansible_collections.netkit.egress.plugins.module_utils import _host

TMPDIR = tempfile.mkdtemp(prefix="netkit-worker-")
STATE = {"commands": [], "writes": [], "binaries": {}}

_run_command = basic.AnsibleModule.run_command


def _recording_run_command(self, args, *more, **kwargs):
    STATE["commands"].append([str(word) for word in args] if isinstance(args, (list, tuple)) else [str(args)])
    return _run_command(self, args, *more, **kwargs)


def _recorder(name, original):
    def recording(*args, **kwargs):
        STATE["writes"].append([name] + [str(arg) for arg in args[1:2]])
        return original(*args, **kwargs)
    return recording


_which = _host.Host.which


def _which_with_overrides(self, name):
    return STATE["binaries"].get(name) or _which(self, name)


basic.AnsibleModule.run_command = _recording_run_command
basic.AnsibleModule._record_module_result = lambda self, result: STATE.__setitem__("result", result)
_host.Host.which = _which_with_overrides
for method in ("write_file", "remove_file", "sysctl_set", "send_frames"):
    original_method = getattr(_host.Host, method)
    setattr(_host.Host, method, staticmethod(_recorder(method, original_method))
            if isinstance(_host.Host.__dict__[method], staticmethod) else _recorder(method, original_method))


def run_one(request):
    module = importlib.import_module(f"ansible_collections.netkit.egress.plugins.modules.{request['module']}")
    args = dict(request.get("args") or {})
    args.update({"_ansible_check_mode": bool(request.get("check")), "_ansible_diff": bool(request.get("diff")),
                 "_ansible_tmpdir": TMPDIR, "_ansible_remote_tmp": TMPDIR, "_ansible_keep_remote_files": False,
                 "_ansible_no_log": False})
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    STATE.update(commands=[], writes=[], binaries=request.get("binaries") or {}, result=None)
    try:
        module.main()
    except SystemExit:
        pass
    except Exception as exc:  # a crash is a finding: report it as a failed result
        STATE["result"] = {"failed": True, "crashed": True, "msg": f"{type(exc).__name__}: {exc}"}
    return {"result": STATE["result"], "commands": STATE["commands"], "writes": STATE["writes"]}


def main():
    # Module output must not reach our answer channel: answers go to the original stdout only.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        if line.strip():
            answers.write(json.dumps(run_one(json.loads(line)), default=str) + "\n")
            answers.flush()


if __name__ == "__main__":
    main()
