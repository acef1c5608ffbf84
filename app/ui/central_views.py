"""The window's central area: the image canvas or the video stage, switched by a tab.

Video editing needs room (the source and the result side by side, a slider under them) that a
side dock lacks; its settings stay in the Video dock. The view follows what the artist does:
opening a clip, raising the Video dock or a video result shows the stage; a new image job or
an image opened from the History shows the canvas. The tabs switch by hand at any time.
"""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget, QWidget

IMAGE, VIDEO = 0, 1


class CentralViews(QTabWidget):
    """Tabs "Image" (``canvas``) and "Video" (``stage``)."""

    def __init__(self, canvas: QWidget, stage: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("CentralTabs")
        self.setDocumentMode(True)
        self.tabBar().setDrawBase(False)
        self.canvas, self.stage = canvas, stage
        self.addTab(canvas, "Image")
        self.addTab(stage, "Video")
        self.setTabToolTip(IMAGE, "Generated images, grids and their uncertainty maps")
        self.setTabToolTip(
            VIDEO, "The clip to edit beside its result (settings in the Video panel)"
        )

    def show_image(self) -> None:
        self.setCurrentIndex(IMAGE)

    def show_video(self) -> None:
        self.setCurrentIndex(VIDEO)

    @property
    def showing_video(self) -> bool:
        return self.currentIndex() == VIDEO
