"""The bar charts of the benches that set rico beside baselines and peers (``compare.py``,
``peers.py``): one panel a section, a bar a row on a log scale, rico's bars in orange."""

from __future__ import annotations

from typing import Any

RICO = "#d95f02"
OTHER = "#7f7f7f"


def bars(ax: Any, names: list[str], values: list[float], rico: list[bool], labels: list[str],
         fontsize: int) -> None:  # fmt: skip
    """One panel: a horizontal bar of each of ``values`` (log scale) named by ``names``, in
    orange where ``rico`` holds, with its label of ``labels`` written at its end."""
    drawn = ax.barh(names, values, color=[RICO if r else OTHER for r in rico])
    ax.set_xscale("log")
    for bar, label in zip(drawn, labels):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center",
                fontsize=fontsize)  # fmt: skip


def save(fig: Any, title: str, fontsize: int, path: Any) -> None:
    """Titles the figure, lays it out, writes it to ``path`` and closes it."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
