"""Info.plist entries of Mzarr.app (used by packaging/mzarr.spec's BUNDLE, checked by the tests).

Declares the .mzarr document type so the Finder shows .mzarr files with the
Mzarr document icon and opens them in Mzarr on a double-click; the app gets
them as QFileOpenEvent (mzarr_app handles those).

* CFBundleTypeRole is Editor: the app edits and saves .mzarr files (a Viewer
  role would tell Launch Services it only reads them).
* The exported type org.mzarr.mzarr conforms to public.data (a file of bytes)
  and public.content (a document with user content, like images and texts),
  so Spotlight, Quick Look and "Open with" treat it as a document.
"""

from __future__ import annotations

BUNDLE_ID = "org.mzarr.viewer"
MZARR_UTI = "org.mzarr.mzarr"
MIME_TYPE = "application/x-mzarr"
DOC_ICON = "mzarr-file.icns"  # copied to Contents/Resources by the spec


def info_plist(version: str) -> dict:
    """The keys merged into PyInstaller's generated Info.plist."""
    return {
        "CFBundleName": "Mzarr",
        "CFBundleDisplayName": "Mzarr",
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follow dark mode
        "LSMinimumSystemVersion": "13.0",  # Qt 6.10+ needs macOS 13
        "LSApplicationCategoryType": "public.app-category.graphics-design",
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": "Mzarr multi-resolution image",
                "CFBundleTypeRole": "Editor",  # the app edits and saves .mzarr files
                "LSHandlerRank": "Owner",
                "LSItemContentTypes": [MZARR_UTI],
                "CFBundleTypeIconFile": DOC_ICON,
            }
        ],
        "UTExportedTypeDeclarations": [
            {
                "UTTypeIdentifier": MZARR_UTI,
                "UTTypeDescription": "Mzarr multi-resolution image",
                "UTTypeConformsTo": ["public.data", "public.content"],
                "UTTypeIconFile": DOC_ICON,
                "UTTypeTagSpecification": {
                    "public.filename-extension": ["mzarr"],
                    "public.mime-type": [MIME_TYPE],
                },
            }
        ],
    }


if __name__ == "__main__":  # print it as XML: python packaging/macos/info_plist.py
    import plistlib
    import sys

    sys.stdout.buffer.write(plistlib.dumps(info_plist("0.0.0")))
