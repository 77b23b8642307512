"""What every chart flybot draws shares: matplotlib with its Agg backend, imported on the
first chart drawn (so start-up never pays for it), and a figure finished as PNG bytes under
its title."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def png(fig: Any, title: str) -> bytes:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
