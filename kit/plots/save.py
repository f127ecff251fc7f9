"""Save a figure with the data it plots, where ``kit figures build`` expects them."""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from kit import io


def save(fig: Figure, data: xr.Dataset, figure_id: str, output_dir: str | Path) -> dict[str, Path] | None:
    """Write ``figures/<id>.png|.pdf`` and ``data/<id>.nc`` under ``output_dir``.

    An empty ``output_dir`` saves nothing (interactive use and notebook tests) and returns None.
    """
    if not output_dir:
        return None
    if not figure_id:
        raise ValueError("figure_id is empty: say which figure this is, e.g. 'heat-snapshots'")
    base = Path(output_dir)
    written = {
        "png": base / "figures" / f"{figure_id}.png",
        "pdf": base / "figures" / f"{figure_id}.pdf",
        "data": base / "data" / f"{figure_id}.nc",
    }
    written["png"].parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(written["png"], dpi=150)
    fig.savefig(written["pdf"], metadata={"CreationDate": None})
    io.save_dataset(data, written["data"])
    return written
