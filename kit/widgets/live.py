"""A figure redrawn in place while work runs: the notebook (and its executed copy) keeps the last frame."""

from __future__ import annotations

from IPython.display import display


class LiveFigure:
    """Call it with the arguments of ``draw``: the first call displays the figure, later calls replace it."""

    def __init__(self, draw):
        self.draw, self.handle = draw, None

    def __call__(self, *args):
        figure = self.draw(*args)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)
        return figure
