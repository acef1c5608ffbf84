"""Desktop conventions: settings and layout restored, recent files, drops, shortcuts, Help menu,
first-run dialog, themes, log files and diagnostic text. The real window, no engine."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QPalette

from app import __version__
from app.diagnostics import about_html, diagnostic_text, safe_url
from app.engine_locator import NO_ENGINE_MESSAGE, engine_command, engine_workdir
from app.logs import ENGINE_LOG, engine_console_logger, setup_app_logging
from app.main import create_window, parse_args
from app.model_check import CheckError
from app.state.canvas import CanvasImage
from app.state.settings import DARK, LIGHT, SYSTEM, Settings
from app.ui.desktop import NO_VIDEO_PANEL
from app.ui.first_run import INTRO_FROZEN, INTRO_SOURCE, FirstRunDialog
from app.ui.theme import apply_theme, current_scheme, light_sheet, resolve_scheme, system_scheme
from engine.protocol import EngineState, Health

ROOT = Path(__file__).resolve().parents[2]


def open_window(qtbot, data_dir: Path, *extra: str):
    controller, win = create_window(
        parse_args(["--data-dir", str(data_dir), "--no-engine", *extra])
    )
    qtbot.addWidget(win)
    win.show()
    return controller, win


@pytest.fixture
def window(qtbot, tmp_path: Path):
    controller, win = open_window(qtbot, tmp_path / "d")
    yield win
    controller.history.index.close()


@pytest.fixture
def notices(window):
    got: list[tuple[str, str]] = []
    window.controller.notice.connect(lambda level, text: got.append((level, text)))
    return got


@pytest.fixture
def restore_look(qapp):
    """Themes change the whole QApplication; put the look back for the next test."""
    app = qapp
    palette, sheet = QPalette(app.palette()), app.styleSheet()
    yield app
    app.setPalette(palette)
    app.setStyleSheet(sheet)
    app.setProperty("sfumatoScheme", None)


def drop(win, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPoint(300, 300).toPointF(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.dropEvent(event)


# --------------------------------------------------------------------------- settings restore
def test_geometry_docks_and_settings_are_restored(qtbot, tmp_path: Path):
    data = tmp_path / "d"
    c1, w1 = open_window(qtbot, data)
    w1.resize(720, 520)
    w1.history_dock.hide()
    c1.generation.prompt = "a harbour at dawn"
    c1.generation.steps = 17
    c1.settings.theme = LIGHT
    c1.settings.first_run_done = True
    w1.close()
    c1.settings.sync()
    c1.history.index.close()

    # Settings live in the data folder's INI file: the test's own, never the user's.
    assert (data / "settings.ini").is_file()
    c2, w2 = open_window(qtbot, data)
    try:
        assert (w2.width(), w2.height()) == (720, 520)
        assert not w2.history_dock.isVisible() and w2.queue_dock.isVisible()
        assert c2.generation.prompt == "a harbour at dawn" and c2.generation.steps == 17
        assert c2.settings.theme == LIGHT
        assert c2.settings.first_run_done is True  # a bool survives the INI round trip
        assert Settings(data / "settings.ini").first_run_done is True
    finally:
        c2.history.index.close()


async def test_recent_files_from_open_and_drop(window, sfumato_png: Path, a1111_png: Path):
    s = window.controller.settings
    window.desktop.open_file(sfumato_png)
    drop(window, a1111_png)
    assert s.recent_files == [str(a1111_png.resolve()), str(sfumato_png.resolve())]
    window.desktop.open_file(sfumato_png)  # again: moves to the front, no duplicate
    assert s.recent_files[0] == str(sfumato_png.resolve()) and len(s.recent_files) == 2
    window.desktop._fill_recent()
    names = [a.text() for a in window.desktop.recent_menu.actions() if a.text()]
    assert names[:2] == [sfumato_png.name, a1111_png.name] and "Clear list" in names
    for n in range(12):
        s.add_recent(a1111_png.with_name(f"x{n}.png"))
    assert len(s.recent_files) == 10


def test_a_recent_file_that_is_gone_says_so(window, notices, tmp_path: Path):
    gone = tmp_path / "gone.png"
    window.controller.settings.recent_files = [str(gone)]
    window.desktop._open_recent(str(gone))
    assert notices[-1] == ("warning", "gone.png is no longer on disk.")
    assert window.controller.settings.recent_files == []


def test_dropping_a_video_without_a_video_panel_says_so(window, notices, tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    drop(window, clip)
    if hasattr(window, "open_video"):  # a Video panel exists: the clip goes there
        assert window.controller.settings.recent_files[0] == str(clip.resolve())
    else:
        assert notices[-1] == ("warning", NO_VIDEO_PANEL)


# --------------------------------------------------------------------------- shortcuts
def test_standard_shortcuts_exist(window):
    keys = {
        a.shortcut().toString()
        for a in window.actions() + window.findChildren(type(window.desktop.save_action))
        if not a.shortcut().isEmpty()
    }
    for key in ("Esc", "Ctrl+S", "F11", "Ctrl+O"):
        assert key in keys, key
    assert {s.key().toString() for s in window._shortcuts} >= {"Ctrl+Return", "Ctrl+Enter"}


def test_escape_with_nothing_running(window, notices, qtbot):
    window.desktop.cancel_action.trigger()
    assert notices[-1] == ("info", "Nothing is running.")


def test_f11_toggles_full_screen(window):
    window.desktop.fullscreen_action.trigger()
    assert window.isFullScreen() and window.desktop.fullscreen_action.isChecked()
    window.desktop.fullscreen_action.trigger()
    assert not window.isFullScreen() and not window.desktop.fullscreen_action.isChecked()


def test_save_image_as_copies_the_png_with_its_recipe(
    window, notices, sfumato_png: Path, tmp_path: Path
):
    assert window.desktop.save_image_to(tmp_path / "x.png") is None  # nothing on the canvas
    window.desktop.save_image_as()
    assert notices[-1] == ("info", "No finished image on the canvas to save.")
    data = sfumato_png.read_bytes()
    window.controller.canvas.show_image(
        CanvasImage(data=data, path=sfumato_png, width=64, height=64)
    )
    out = window.desktop.save_image_to(tmp_path / "copy")
    assert out == tmp_path / "copy.png" and out.read_bytes() == data


# --------------------------------------------------------------------------- Help menu
def test_help_menu_and_diagnostics(window, notices):
    texts = [a.text() for a in window.desktop.help_menu.actions() if a.text()]
    assert texts == ["First-run setup…", "Open log folder", "Copy diagnostic info", "About Sfumato"]
    text = window.desktop.copy_diagnostics()
    assert QGuiApplication.clipboard().text() == text
    c = window.controller
    assert f"Sfumato {__version__}" in text
    for path in (c.paths.data_dir, c.output_dir, c.paths.logs, c.paths.models):
        assert str(path) in text
    assert notices[-1][0] == "info"


def test_diagnostics_never_show_the_token_and_name_the_gpu(window):
    c = window.controller
    c.settings.remote_token = "s3cret-token"
    c.engine.url = "http://user:s3cret-token@gpu-box:8765/?token=s3cret-token"
    c.engine.update_health(
        Health(
            version="0.1.0",
            state=EngineState.ready,
            device="cuda",
            dtype="float16",
            torch="2.13.0",
            diffusers="0.42.0",
            gpu="NVIDIA H100 80GB HBM3",
            python="3.11.7",
        )
    )
    text = diagnostic_text(c)
    assert "s3cret" not in text
    assert "url: http://gpu-box:8765/" in text
    assert "cuda · NVIDIA H100 80GB HBM3 · float16" in text
    assert "torch 2.13.0 · diffusers 0.42.0" in text
    html = about_html(c)
    assert "NVIDIA H100 80GB HBM3" in html and "torch 2.13.0" in html and __version__ in html
    assert safe_url("") == ""
    box = window.desktop.show_about()
    assert "diffusers 0.42.0" in box.text()
    box.close()


def test_about_without_an_engine(window):
    assert "not connected" in about_html(window.controller)


# --------------------------------------------------------------------------- first run
def test_first_run_dialog_applies_and_is_marked_seen(qtbot, tmp_path: Path):
    settings = Settings(tmp_path / "s.ini")
    dialog = FirstRunDialog(settings, tmp_path / "out", tmp_path / "models")
    qtbot.addWidget(dialog)
    assert INTRO_SOURCE in dialog.findChildren(type(dialog.check_result))[1].text()
    assert not dialog.check_button.isEnabled()  # no checker: nothing to run
    assert dialog.models_edit.text() == str(tmp_path / "models")
    dialog.remote_radio.setChecked(True)
    assert dialog.url_edit.isEnabled() and not dialog.python_edit.isEnabled()
    dialog.url_edit.setText("http://gpu-box:8765")
    dialog.token_edit.setText("tok")
    dialog.output_edit.setText(str(tmp_path / "mine"))
    assert dialog.apply() is True
    again = Settings(tmp_path / "s.ini")
    assert (again.engine_mode, again.remote_url, again.remote_token, again.output_dir) == (
        "remote",
        "http://gpu-box:8765",
        "tok",
        str(tmp_path / "mine"),
    )
    assert again.first_run_done is True
    assert FirstRunDialog(settings, tmp_path, tmp_path).apply() is False  # nothing changed


def test_first_run_explains_the_engine_in_the_packaged_app(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    dialog = FirstRunDialog(Settings(tmp_path / "s.ini"), tmp_path, tmp_path)
    qtbot.addWidget(dialog)
    texts = [label.text() for label in dialog.findChildren(type(dialog.check_result))]
    assert INTRO_FROZEN in texts
    assert "Sfumato's engine" in dialog.python_edit.placeholderText()


async def test_first_run_check_reports_a_failure(qtbot, tmp_path: Path):
    async def failing():
        raise CheckError("No engine is running.")

    dialog = FirstRunDialog(Settings(tmp_path / "s.ini"), tmp_path, tmp_path, failing)
    qtbot.addWidget(dialog)
    await dialog.run_check()
    assert "Not working yet" in dialog.check_result.text()
    assert "No engine is running." in dialog.check_result.text()
    assert dialog.check_button.isEnabled()


def test_first_run_from_the_help_menu(window):
    dialog = window.desktop.show_first_run()
    assert dialog.isVisible() and dialog.check_button.isEnabled()
    dialog.reject()
    assert window.controller.settings.first_run_done is True  # shown once


# --------------------------------------------------------------------------- themes
def test_light_and_dark_themes(restore_look):
    app = restore_look
    assert apply_theme(app, LIGHT) == LIGHT == current_scheme(app)
    assert app.palette().color(QPalette.ColorRole.Window).lightnessF() > 0.8
    assert "#1b1c1f" not in app.styleSheet()  # no dark panel colour left in the light sheet
    assert apply_theme(app, DARK) == DARK == current_scheme(app)
    assert app.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.2
    assert apply_theme(app, SYSTEM) == system_scheme(app) == resolve_scheme(SYSTEM, app)
    sheet = "QWidget { background: #1b1c1f; color: #d9dade; border: rgba(40, 42, 47, 235); }"
    light = light_sheet(sheet)
    assert "#1b1c1f" not in light and "rgba(" in light and ", 235)" in light


def test_section_headings_have_room_above_and_line_up_with_the_fields(restore_look, qtbot):
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from app.ui.form import field_label, section_title

    def first_ink_column(label) -> int:
        image = label.grab().toImage()
        return min(
            x
            for x in range(image.width())
            for y in range(image.height())
            if image.pixelColor(x, y).lightness() > 100
        )

    apply_theme(restore_look, DARK)
    host = QWidget()
    qtbot.addWidget(host)
    lay = QVBoxLayout(host)
    field = field_label("Sampler")
    heading = section_title("Sampling")
    lay.addWidget(field)
    lay.addWidget(heading)
    host.show()
    qtbot.waitExposed(host)
    assert heading.contentsRect().top() >= 6  # apart from the section above
    assert first_ink_column(heading) == first_ink_column(field)  # not indented


def test_theme_choice_in_settings_applies_at_once(window, restore_look):
    apply_theme(restore_look, DARK)
    dialog = window.open_settings()
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData(LIGHT))
    dialog.accept()
    assert window.controller.settings.theme == LIGHT
    assert current_scheme(restore_look) == LIGHT


# --------------------------------------------------------------------------- logs
def test_log_files_rotate(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("app.logs.MAX_BYTES", 2000)
    console = engine_console_logger(tmp_path / "logs")
    for n in range(200):
        console.info(f"engine line {n:04d} " + "x" * 40)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == [ENGINE_LOG, f"{ENGINE_LOG}.1", f"{ENGINE_LOG}.2", f"{ENGINE_LOG}.3"]
    assert "engine line 0199" in (tmp_path / "logs" / ENGINE_LOG).read_text()
    for h in console.handlers:
        h.close()


def test_app_log_file(tmp_path: Path):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        path = setup_app_logging(tmp_path / "logs", "WARNING")
        logging.getLogger("app.test").info("hello from the app")
        for h in root.handlers:
            h.flush()
        assert path == tmp_path / "logs" / "sfumato.log"
        assert "app.test INFO: hello from the app" in path.read_text()
    finally:
        for h in root.handlers:
            if h not in before[0]:
                h.close()
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_logs_go_to_the_data_folder_when_one_is_given(window):
    assert window.controller.paths.logs == window.controller.paths.data_dir / "logs"
    assert window.controller.paths.logs.is_dir()


# --------------------------------------------------------------------------- engine locator
def test_engine_command_from_source_frozen_and_settings(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("SFUMATO_ENGINE_CMD", raising=False)
    assert engine_command("") == [sys.executable, "-m", "engine.cli"]
    assert engine_workdir([sys.executable]) == ROOT
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert engine_command("") is None
    venv_python = ROOT / ".venv" / "bin" / "python"
    assert engine_command(str(venv_python)) == [str(venv_python), "-m", "engine.cli"]
    assert engine_workdir([str(venv_python)]) == ROOT  # a checkout's own venv
    assert engine_workdir([str(tmp_path / "env" / "bin" / "python")]) is None
    monkeypatch.setenv("SFUMATO_ENGINE_CMD", "my-engine --fast")
    assert engine_command(str(venv_python)) == ["my-engine", "--fast"]


async def test_packaged_app_without_an_engine_python_says_what_to_do(qtbot, tmp_path, monkeypatch):
    monkeypatch.delenv("SFUMATO_ENGINE_CMD", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    controller, win = create_window(parse_args(["--data-dir", str(tmp_path / "d")]))
    qtbot.addWidget(win)
    got = []
    controller.notice.connect(lambda level, text: got.append((level, text)))
    try:
        await controller.start()
        assert got[-1] == ("error", NO_ENGINE_MESSAGE)
        assert controller.engine.detail == NO_ENGINE_MESSAGE and controller.local is None
    finally:
        await controller.shutdown()


def test_settings_dialog_engine_python_restarts_the_engine(window):
    dialog = window.open_settings()
    assert dialog.python_edit.isEnabled()  # local engine
    dialog.python_edit.setText("/opt/sfumato-env/bin/python")
    assert dialog.apply() is True
    assert window.controller.settings.engine_python == "/opt/sfumato-env/bin/python"
    dialog.close()
    dialog = window.open_settings()
    assert dialog.python_edit.text() == "/opt/sfumato-env/bin/python"
    assert dialog.apply() is False
    dialog.close()


def test_files_on_the_command_line(tmp_path: Path, sfumato_png: Path):
    args = parse_args([str(sfumato_png), "-style", "fusion", str(tmp_path / "missing.png")])
    assert args.files == [sfumato_png]  # Qt's options and missing files are not opened
