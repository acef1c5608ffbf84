"""Desktop conventions on the main window: Help menu (first-run setup, log folder, diagnostic
info, About), recent files, opening dropped images and videos, and the standard shortcuts
(Esc cancels the running job, Ctrl+S saves the image as…, F11 full screen).

Kept out of main_window.py so that the window's construction stays about panels.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from app.diagnostics import about_html, diagnostic_text
from app.model_check import CheckResult, check_embedded_model, preload_embedded_model
from app.recipe import IMAGE_SUFFIXES

from .first_run import FirstRunDialog
from .shortcuts import application_action
from .theme import apply_theme
from .transient import delete_when_finished

if TYPE_CHECKING:
    from app.controller import AppController

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
NO_VIDEO_PANEL = (
    "Videos open in the Video panel, which is not available in this version yet; "
    "drop a PNG to reuse its settings."
)


class DesktopActions(QObject):
    """The actions above, installed on ``window`` (its File and View menus, a new Help menu).

    Given the window's parts rather than the window's class, so that this module and
    main_window.py do not name each other."""

    def __init__(
        self, window: QMainWindow, controller: AppController, file_menu: QMenu, view_menu: QMenu
    ):
        super().__init__(window)
        self.window = window
        c = controller
        self.controller = c

        # ---- shortcuts: Esc from any window of the app (a modal dialog, a menu or an open
        # combo list keeps its own Esc: see shortcuts.py); the others window-wide
        self.cancel_action = application_action(
            window, "Cancel running job", "Escape", self.cancel_running
        )
        self.save_action = self._action(
            "Save image as…", QKeySequence.StandardKey.Save, self.save_image_as
        )
        self.fullscreen_action = self._action("Full screen", "F11", self.toggle_full_screen)
        self.fullscreen_action.setCheckable(True)

        # ---- File: save, recent files
        first = file_menu.actions()[1] if len(file_menu.actions()) > 1 else None
        self.recent_menu = QMenu("Open recent", window)
        self.recent_menu.setObjectName("recent_menu")
        file_menu.insertMenu(first, self.recent_menu)
        file_menu.insertAction(first, self.save_action)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()

        # ---- View: full screen, theme follows Settings
        view_menu.addSeparator()
        view_menu.addAction(self.fullscreen_action)

        # ---- Help
        help_menu = window.menuBar().addMenu("&Help")
        self.help_menu = help_menu
        self.first_run_action = help_menu.addAction("First-run setup…", self.show_first_run)
        help_menu.addSeparator()
        self.logs_action = help_menu.addAction("Open log folder", self.open_log_folder)
        self.diag_action = help_menu.addAction("Copy diagnostic info", self.copy_diagnostics)
        help_menu.addSeparator()
        self.about_action = help_menu.addAction("About Sfumato", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.first_run: FirstRunDialog | None = None

    def _action(self, text: str, key, slot) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    # ----------------------------------------------------------------- files
    def open_file(self, path: Path | str) -> None:
        """Open a file the user chose or dropped: images restore their recipe, videos go to the
        Video panel when the window has one."""
        path = Path(path)
        c = self.controller
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            open_video = getattr(self.window, "open_video", None)
            if open_video is None:
                c.notice.emit("warning", NO_VIDEO_PANEL)
                return
            open_video(path)
            c.settings.add_recent(path)
            return
        if c.generate_jobs.restore_from_file(path) and suffix in IMAGE_SUFFIXES:
            c.settings.add_recent(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = list(self.controller.settings.recent_files)
        for text in recent:
            act = self.recent_menu.addAction(Path(text).name)
            act.setToolTip(text)
            act.setStatusTip(text)
            act.triggered.connect(lambda _=False, t=text: self._open_recent(t))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _open_recent(self, text: str) -> None:
        if not Path(text).exists():
            self.controller.notice.emit("warning", f"{Path(text).name} is no longer on disk.")
            self.controller.settings.recent_files = [
                p for p in self.controller.settings.recent_files if p != text
            ]
            return
        self.open_file(text)

    def _clear_recent(self) -> None:
        self.controller.settings.recent_files = []

    def save_image_as(self) -> Path | None:
        """Copy the image shown on the canvas (PNG with its recipe) to a file the user picks."""
        c = self.controller
        image = c.canvas.current_image
        if image is None or not image.ready:
            c.notice.emit("info", "No finished image on the canvas to save.")
            return None
        name = image.path.name if image.path is not None else "sfumato.png"
        target, _ = QFileDialog.getSaveFileName(
            self.window, "Save image as", str(Path.home() / name), "PNG image (*.png)"
        )
        if not target:
            return None
        return self.save_image_to(Path(target))

    def save_image_to(self, target: Path) -> Path | None:
        """The saving half of Save as (tests call it without the file dialog)."""
        c = self.controller
        image = c.canvas.current_image
        if image is None or not image.ready:
            return None
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        try:
            if image.path is not None and image.path.is_file():
                shutil.copyfile(image.path, target)
            else:
                target.write_bytes(image.data or b"")
        except OSError as exc:
            c.notice.emit("error", f"Could not save {target.name}: {exc.strerror or exc}")
            return None
        c.notice.emit("info", f"Saved {target}")
        return target

    # ----------------------------------------------------------------- shortcuts
    def cancel_running(self) -> None:
        running = self.controller.jobs.running
        if running is None:
            self.controller.notice.emit("info", "Nothing is running.")
            return
        self.controller.queue.cancel(running.id)

    def toggle_full_screen(self) -> None:
        w = self.window
        if w.isFullScreen():
            w.showNormal()
        else:
            w.showFullScreen()
        self.fullscreen_action.setChecked(w.isFullScreen())

    # ----------------------------------------------------------------- help
    def show_first_run(self) -> FirstRunDialog:
        """The first-run dialog (window-modal); OK applies it and restarts the engine if needed."""
        c = self.controller
        dialog = FirstRunDialog(
            c.settings, c.paths.outputs, c.paths.models, checker=None, parent=self.window
        )

        async def check() -> CheckResult:
            if dialog.apply():
                await c.reconnect()
            return await check_embedded_model(c, progress=dialog.show_progress)

        dialog.checker = check
        dialog.check_button.setEnabled(True)
        # Load the built-in model while the dialog is read: the check then only generates.
        # Once the event loop runs (the dialog can open before it does, at start-up).
        QTimer.singleShot(0, dialog, lambda: _spawn_if_running(c, preload_embedded_model(c)))
        dialog.setModal(True)

        def done(result: int) -> None:
            if result:
                if dialog.apply():
                    c.session.restart_engine()
            else:
                c.settings.first_run_done = True

        dialog.finished.connect(done)
        dialog.open()
        self.first_run = dialog
        return dialog

    def open_log_folder(self) -> None:
        folder = self.controller.paths.logs
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def copy_diagnostics(self) -> str:
        text = diagnostic_text(self.controller)
        QGuiApplication.clipboard().setText(text)
        self.controller.notice.emit(
            "info", "Diagnostic info copied to the clipboard (no tokens in it)."
        )
        return text

    def show_about(self) -> QMessageBox:
        box = QMessageBox(self.window)
        box.setWindowTitle("About Sfumato")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(about_html(self.controller))
        icon = self.window.windowIcon()
        if not icon.isNull():
            box.setIconPixmap(icon.pixmap(64, 64))
        box.setModal(True)
        delete_when_finished(box)
        box.open()
        self.about_box = box
        return box

    def apply_theme(self) -> str:
        """Re-apply the theme after Settings changed it."""
        from PySide6.QtWidgets import QApplication

        return apply_theme(QApplication.instance(), self.controller.settings.theme)


def _spawn_if_running(controller, coro) -> None:
    """``controller.spawn(coro)`` on a running event loop; closed unrun without one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        return
    controller.spawn(coro)
