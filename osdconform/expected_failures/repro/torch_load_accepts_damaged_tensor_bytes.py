"""torch-save: ``torch.load`` loads a checkpoint whose tensor bytes were overwritten, silently.

``torch.save`` writes a zip archive with a CRC-32 per record, but ``torch.load``
does not check them (disabled on purpose, pytorch/pytorch#28858; an integrity
check is asked for in #126952).  Bytes damaged inside a tensor's record load as
other values: the optimizer resumes from state that was never saved, and
nothing says so.  Only damage to the archive's headers is noticed.  Standalone:
torch only, one process.  Exits 1 while torch.load accepts the damaged file.
"""

import os
import sys
import tempfile
import zipfile

import torch


def main() -> int:
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 16)
    optim = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 16)).sum().backward()
    optim.step()
    saved = optim.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optimizer.pt")
        torch.save(saved, path)
        # The payload of the largest record (a state tensor), located from its local header.
        with zipfile.ZipFile(path) as archive:
            info = max(archive.infolist(), key=lambda i: i.file_size)
        with open(path, "r+b") as fh:
            fh.seek(info.header_offset + 26)
            name_len, extra_len = (int.from_bytes(fh.read(2), "little") for _ in range(2))
            fh.seek(info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
            fh.write(b"\xde\xad\xbe\xef" * 8)
        try:
            loaded = torch.load(path, weights_only=True)
        except Exception as exc:
            print(f"fixed: torch.load refused the damaged file: {str(exc)[:200]}")
            return 0
    changed = [(p, k) for p, entry in saved["state"].items() for k, v in entry.items()
               if not torch.equal(v, loaded["state"][p][k])]
    print(f"BUG: torch.load accepted a damaged file ({info.filename}); state that differs from "
          f"what was saved: {changed}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
