# %% [markdown]
# # ftfix in a notebook
# Run cell by cell (VS Code / Jupyter "percent" format) or as a script:
# `python examples/notebook.py build/notebook-demo`. In Jupyter, a bare `report` renders as an
# HTML table (`Report._repr_html_`).

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ckpt_builders import LLAMA3_TEMPLATE_NO_GEN_PROMPT, build_merged

import ftfix

out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/notebook-demo")
base = build_merged(out / "base")
ft = build_merged(out / "finetuned", chat_template=LLAMA3_TEMPLATE_NO_GEN_PROMPT, seed=1)

# %% read-only check
report = ftfix.check(base, ft)
print(report)

# %% what a repair would change, without writing
print(ftfix.repair(base, ft, dry_run=True).diff)

# %% repair, then look at the HTML a notebook shows
report = ftfix.repair(base, ft)
html = report._repr_html_()
print(report.summary())
assert report.ok
assert "<table>" in html

# %% undo restores every byte
print(ftfix.undo(ft))
