"""Which native allocation sites grew between two heaptrack recordings of the app.

``bench/soak.py --heaptrack PREFIX`` records the app's mallocs and ends it without clean-up, so
heaptrack's "leaked" bytes are what was live at the end. Given a short soak and a longer one,
this prints the live bytes each site added, grouped by the first native function the Python
code called (``QListWidget::QListWidget``, ``pysqlite_connection_execute_impl``,
``QImageReader::read``…): a site that follows the number of images made is a leak or a cache
filling; one that does not is the steady state. Needs ``heaptrack_print`` (package heaptrack).

    python bench/native_growth.py /tmp/short.zst /tmp/long.zst --depth 2 --top 30

Unresolved addresses (PySide's wrapper libraries have no symbols) are dropped, so the same
call path matches across the two runs despite address-space randomisation.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

#: Frames of the interpreter and of the bindings: the native entry point is the first after them.
BINDING = re.compile(
    r"_PyEval|cfunction_|_PyObject_|method_vectorcall|slot_tp|vectorcall|ceval|\(call\.c"
    r"|Sbk|shiboken|libpyside|PySide::|Shiboken::|Wrapper::|type_call|wrap_init"
)


def live_stacks(recording: Path) -> collections.Counter:
    """Bytes live at the recording's end per call stack (``heaptrack_print``'s flame graph of
    leaked memory), with unresolved addresses blanked."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        subprocess.run(
            ["heaptrack_print", "-f", str(recording), "-p", "0", "-a", "0", "-T", "0", "-l", "0"]
            + ["--flamegraph-cost-type", "leaked", "-F", out.name],
            check=True,
            capture_output=True,
        )
        stacks: collections.Counter = collections.Counter()
        for line in Path(out.name).read_text().splitlines():
            stack, _, size = line.rpartition(" ")
            stacks[re.sub(r"0x[0-9a-f]+", "?", stack)] += int(size)
    return stacks


def entry_point(stack: str, depth: int) -> str:
    """The first ``depth`` named native frames below the last interpreter/binding frame."""
    frames = [re.sub(r"\s*\(.*?\)\s*$", "", f) for f in stack.split(";") if f]
    bound = [i for i, f in enumerate(frames) if BINDING.search(f)]
    native = [f for f in frames[bound[-1] + 1 if bound else 0 :] if f != "?"]
    return " ; ".join(native[:depth]) or "(the interpreter and bindings themselves)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("short", type=Path, help="heaptrack recording of the shorter soak")
    p.add_argument("long", type=Path, help="heaptrack recording of the longer soak")
    p.add_argument("--depth", type=int, default=1, help="native frames to group by")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    short, long = live_stacks(args.short), live_stacks(args.long)
    grown: collections.Counter = collections.Counter()
    for stack in short.keys() | long.keys():
        grown[entry_point(stack, args.depth)] += long[stack] - short[stack]
    total = sum(long.values()) - sum(short.values())
    print(f"live native memory grew {total / 2**20:+.2f} MiB; by entry point:")
    for site, size in grown.most_common(args.top):
        print(f"{size / 1024:+10.1f} KiB  {site}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
