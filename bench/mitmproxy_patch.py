"""``mitmdump -s bench/mitmproxy_patch.py``: mitmproxy as if ``docs/mitmproxy-patch-coalesce.diff`` were applied.

For the benchmark only (``python -m bench.profile --plain-script bench/mitmproxy_patch.py``): plain mitmdump
with the proposed upstream change, without touching the installed package. The diff is applied with
``patch`` to a copy of the installed ``_http1.py``; the patched ``Http1Connection.read_body`` is compiled
from it and put in place with the real module's globals. If the diff does not apply to the installed
mitmproxy, loading this script fails.
"""

from __future__ import annotations

import subprocess
import tempfile
import types
from pathlib import Path
from typing import Any

from mitmproxy.proxy.layers.http import _http1

DIFF = Path(__file__).resolve().parent.parent / "docs" / "mitmproxy-patch-coalesce.diff"


def _patched_read_body() -> Any:
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "mitmproxy" / "proxy" / "layers" / "http" / "_http1.py"
        target.parent.mkdir(parents=True)
        target.write_text(Path(_http1.__file__).read_text())
        subprocess.run(["patch", "-p1", "--quiet", "-d", d, "-i", str(DIFF)], check=True)
        source = target.read_text()
    scratch: dict[str, Any] = {"__name__": _http1.__name__ + "_patched"}
    exec(compile(source, _http1.__file__, "exec"), scratch)
    fn = scratch["Http1Connection"].__dict__["read_body"]
    return types.FunctionType(fn.__code__, vars(_http1), "read_body", fn.__defaults__, fn.__closure__)


if not getattr(_http1.Http1Connection.read_body, "_coalesce_patch", False):
    _read_body = _patched_read_body()
    _read_body._coalesce_patch = True
    _http1.Http1Connection.read_body = _read_body
