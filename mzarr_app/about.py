"""Help > About and Help > Licences: the version, the project licence and the licence texts of the third-party
components shipped with the viewer (found by :mod:`mzarr_app.licences`: ``licence_dir()``, ``licence_files()``)."""

from __future__ import annotations

import importlib
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import APP_NAME, __version__

PROJECT_LICENCE = "BSD-3-Clause"
LICENCES_MODULE = "mzarr_app.licences"
MAX_TEXT = 2_000_000  # characters of one licence file shown


def licence_sources() -> tuple[Path | None, list[Path], str]:
    """(folder, files, note): what :mod:`mzarr_app.licences` finds; note says why nothing was found."""
    try:
        mod = importlib.import_module(LICENCES_MODULE)
    except ImportError as exc:
        if exc.name != LICENCES_MODULE:
            raise
        return None, [], f"the licence texts are not part of this build ({LICENCES_MODULE} is missing)"
    folder = mod.licence_dir()
    files = [Path(p) for p in mod.licence_files()]
    note = "" if files else "no licence files were found next to the application"
    return (Path(folder) if folder is not None else None), files, note


def about_text() -> str:
    return (f"<h3>{APP_NAME} {__version__}</h3><p>Multi-resolution JPEG XL images (Zarr + OME-NGFF) in a "
            f"single-file .mzarr container.</p><p>Licence: {PROJECT_LICENCE}. The viewer includes third-party "
            "components (Qt and PySide6 under the LGPL, NumPy, zarr, imagecodecs, libjxl...), each under its own "
            "licence: see <i>Licences…</i>.</p>")


def about_box(parent: QWidget) -> QMessageBox:
    """A non-blocking About box with a "Licences…" button (opens :class:`LicencesDialog`)."""
    box = QMessageBox(QMessageBox.Icon.NoIcon, f"About {APP_NAME}", about_text(), QMessageBox.StandardButton.Ok,
                      parent)
    box.setObjectName("aboutBox")
    box.setTextFormat(Qt.TextFormat.RichText)
    icon = parent.windowIcon() if parent is not None else None
    if icon is not None and not icon.isNull():
        box.setIconPixmap(icon.pixmap(64, 64))
    button = box.addButton("Licences…", QMessageBox.ButtonRole.ActionRole)
    button.setObjectName("licencesButton")
    box.licences_button = button  # type: ignore[attr-defined]
    return box


class LicencesDialog(QDialog):
    """The project licence and every third-party licence file: a list of files, the selected one's text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("licencesDialog")
        self.setWindowTitle(f"{APP_NAME} — Licences")
        self.resize(760, 560)
        self.folder, self.files, note = licence_sources()
        lay = QVBoxLayout(self)
        intro = QLabel(
            f"{APP_NAME} {__version__} is distributed under the {PROJECT_LICENCE} licence. It includes the "
            "third-party components listed below, each under its own licence (Qt and PySide6: LGPL-3.0; you may "
            "replace those libraries with your own build)." + (f"<br><i>{note}</i>" if note else ""))
        intro.setWordWrap(True)
        intro.setObjectName("licencesIntro")
        lay.addWidget(intro)
        row = QHBoxLayout()
        self.list = QListWidget()
        self.list.setObjectName("licenceList")
        self.list.setMinimumWidth(240)
        self.text = QPlainTextEdit()
        self.text.setObjectName("licenceText")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        row.addWidget(self.list, 1)
        row.addWidget(self.text, 2)
        lay.addLayout(row, 1)
        for path in self.files:
            item = QListWidgetItem(self._name(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.list.addItem(item)
        self.list.currentRowChanged.connect(self._show)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        if self.folder is not None:
            folder_button = QPushButton("Open folder")
            folder_button.setObjectName("openLicenceFolder")
            folder_button.clicked.connect(
                lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folder))))
            buttons.addButton(folder_button, QDialogButtonBox.ButtonRole.ActionRole)
        lay.addWidget(buttons)
        if self.files:
            self.list.setCurrentRow(0)
        else:
            self.text.setPlainText(f"{APP_NAME} is licensed under {PROJECT_LICENCE}.")

    def _name(self, path: Path) -> str:
        """A readable name: relative to the bundle's folder, ``numpy-2.1.0: LICENSE.txt`` for a file of an installed
        distribution, ``Mzarr: LICENSE`` for the project's own."""
        if self.folder is not None:
            try:
                return str(path.relative_to(self.folder))
            except ValueError:
                pass
        parts = path.parts
        for i in range(len(parts) - 1, -1, -1):
            if parts[i].endswith(".dist-info"):
                return f"{parts[i][: -len('.dist-info')]}: {'/'.join(parts[i + 1:])}"
        if path.parent == Path(__file__).resolve().parent.parent:
            return f"{APP_NAME.split()[0]}: {path.name}"
        return path.name if path.parent.name in ("", ".") else f"{path.parent.name}/{path.name}"

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.files):
            return
        path = self.files[row]
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(MAX_TEXT)
        except OSError as exc:
            text = f"{path} cannot be read: {exc}"
        self.text.setPlainText(text)
