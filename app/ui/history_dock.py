"""The History dock: saved images newest first; click to view, reuse their settings."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.library import is_video
from app.state import history as history_module
from app.state.history import HistoryEntry, HistoryState

from .thumbnails import ThumbnailLoader

ICON = 84


class HistoryDockWidget(QWidget):
    """A thumbnail grid over HistoryState plus the selected image's recipe."""

    open_requested = Signal(object)  # HistoryEntry
    use_settings_requested = Signal(object)  # HistoryEntry

    def __init__(self, history: HistoryState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("DockBody")
        self.history = history
        # as many thumbnails as the list shows (rows going and coming back with a search)
        self.thumbs = ThumbnailLoader(ICON * 2, self, max_items=history_module.PAGE)
        self.thumbs.ready.connect(self._on_thumb)
        self._items: dict[str, QListWidgetItem] = {}

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda t: history.load(t.strip()))
        self.view = QListWidget()
        self.view.setObjectName("history_view")
        self.view.setViewMode(QListWidget.ViewMode.IconMode)
        self.view.setIconSize(QSize(ICON, ICON))
        self.view.setGridSize(QSize(ICON + 10, ICON + 10))
        self.view.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.view.setMovement(QListWidget.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.itemClicked.connect(lambda it: self._open(it))
        self.view.itemDoubleClicked.connect(lambda it: self._use(it))
        self.view.currentItemChanged.connect(lambda cur, _prev: self._details(cur))
        self.empty = QLabel("Finished images appear here.\nClick one to view it.")
        self.empty.setObjectName("Hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.details = QLabel()
        self.details.setObjectName("Muted")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_button = QPushButton("Use these settings")
        self.use_button.setObjectName("use_settings_button")
        self.use_button.setToolTip(
            "Copy this image's prompt, seed, size and sampler to the "
            "Prompt panel (double-click does the same)"
        )
        self.use_button.clicked.connect(lambda: self._use(self.view.currentItem()))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(lambda: self._reveal(self.view.currentItem()))

        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button, 1)
        buttons.addWidget(self.folder_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        lay.addWidget(self.search)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.empty, 1)
        lay.addWidget(self.details)
        lay.addLayout(buttons)

        history.reset.connect(self.rebuild)
        history.added.connect(self._prepend)
        self.rebuild()

    # ----------------------------------------------------------------- list
    def rebuild(self) -> None:
        self.view.clear()
        self._items.clear()
        for entry in self.history.entries:
            self.view.addItem(self._make_item(entry))
        self._update_empty()

    def _prepend(self, entry: HistoryEntry) -> None:
        old = self._items.get(str(entry.path))
        if old is not None:
            self.view.takeItem(self.view.row(old))
        row = next((i for i, e in enumerate(self.history.entries) if e.path == entry.path), 0)
        self.view.insertItem(row, self._make_item(entry))
        # the list keeps history.PAGE entries: the oldest rows (at the end) leave with them,
        # so a long session holds a bounded number of rows and thumbnails
        while self.view.count() > len(self.history.entries):
            gone = _entry(self.view.takeItem(self.view.count() - 1))
            if gone is not None:
                self._items.pop(str(gone.path), None)
        self._update_empty()

    def _make_item(self, entry: HistoryEntry) -> QListWidgetItem:
        item = QListWidgetItem()
        item.setData(Qt.ItemDataRole.UserRole, entry)
        item.setSizeHint(QSize(ICON + 8, ICON + 8))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
        item.setToolTip(
            f"{entry.prompt or '(no prompt)'}\nseed {entry.seed} · "
            f"{entry.width}×{entry.height} · {when}"
        )
        key = str(entry.path)
        self._items[key] = item
        if is_video(entry.path):
            item.setToolTip(
                f"Video · {entry.prompt or '(no prompt)'}\n{entry.width}×"
                f"{entry.height} · {when}\nOpen: play it in the Video panel"
            )
        cached = self.thumbs.cached(key)
        if cached is not None:
            item.setIcon(QIcon(QPixmap.fromImage(cached)))
        else:
            self.thumbs.request(key)
        return item

    def _on_thumb(self, path: str, image: QImage) -> None:
        item = self._items.get(path)
        if item is not None and not image.isNull():
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _update_empty(self) -> None:
        has = self.view.count() > 0
        self.view.setVisible(has)
        self.empty.setVisible(not has)
        self.empty.setText(
            "Finished images appear here.\nClick one to view it."
            if not self.history.search
            else "No image matches that search."
        )
        self.use_button.setEnabled(has)
        self.folder_button.setEnabled(has)
        if not has:
            self.details.setText("")

    def _details(self, item: QListWidgetItem | None) -> None:
        entry = _entry(item)
        if entry is None:
            self.details.setText("")
            return
        params = entry.params
        lines = [f"<b>{_esc(entry.prompt) or '<i>no prompt</i>'}</b>"]
        if params is not None:
            lines.append(
                f"{params.width}×{params.height} · {params.steps} steps · "
                f"{_esc(params.sampler)} · CFG {params.cfg_scale:g} · seed {entry.seed}"
            )
        self.details.setText("<br>".join(lines))

    # ----------------------------------------------------------------- actions
    def _open(self, item: QListWidgetItem | None) -> None:
        entry = _entry(item)
        if entry is not None:
            self.open_requested.emit(entry)

    def _use(self, item: QListWidgetItem | None) -> None:
        entry = _entry(item)
        if entry is not None:
            self.use_settings_requested.emit(entry)

    def _reveal(self, item: QListWidgetItem | None) -> None:
        entry = _entry(item)
        folder = entry.path.parent if entry is not None else None
        if folder is not None and folder.is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _menu(self, pos) -> None:
        item = self.view.itemAt(pos)
        entry = _entry(item)
        if entry is None:
            return
        menu = QMenu(self)
        menu.addAction("Open on canvas", lambda: self._open(item))
        menu.addAction("Use these settings", lambda: self._use(item))
        menu.addSeparator()
        menu.addAction("Copy prompt", lambda: QGuiApplication.clipboard().setText(entry.prompt))
        menu.addAction(
            "Copy file path", lambda: QGuiApplication.clipboard().setText(str(entry.path))
        )
        menu.addAction("Open folder", lambda: self._reveal(item))
        menu.addSeparator()
        menu.addAction("Remove from history", lambda: self.history.remove(entry))
        menu.exec(self.view.viewport().mapToGlobal(pos))
        menu.deleteLater()  # one per right-click: not kept by the dock for the session

    def select_path(self, path: Path) -> None:
        item = self._items.get(str(path))
        if item is not None:
            self.view.setCurrentItem(item)


def _entry(item: QListWidgetItem | None) -> HistoryEntry | None:
    return item.data(Qt.ItemDataRole.UserRole) if item is not None else None


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
