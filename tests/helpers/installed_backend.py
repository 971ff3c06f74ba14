"""Install a backend through a real ``osdconform.backends`` entry point, without pip.

A distribution is installed when a ``<name>-<version>.dist-info`` directory
with ``METADATA`` (and here ``entry_points.txt``) sits on ``sys.path``; that
is what pip writes and what `importlib.metadata` reads.  Putting one in a
temporary directory on a subprocess's path gives it a really installed
entry-point backend (``fake-backend``: the reference backend declaring only
full OSDs, plan ``none``, world sizes up to 2).
"""

from __future__ import annotations

from pathlib import Path

FAKE_BACKEND_MODULE = """\
from osdconform.backends import Capabilities
from osdconform.backends.reference import ReferenceBackend


class FakeBackend(ReferenceBackend):
    name = "fake-backend"
    capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"none"}), max_world_size=2)
"""


def install_entry_point_backend(
    where: Path, name: str = "fake-backend", target: str = "fake_osd_backend:FakeBackend"
) -> Path:
    (where / "fake_osd_backend.py").write_text(FAKE_BACKEND_MODULE)
    info = where / "fake_osd_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-osd-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[osdconform.backends]\n{name} = {target}\n")
    return where
