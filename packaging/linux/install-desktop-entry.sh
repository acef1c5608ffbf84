#!/bin/sh
# Put Sfumato in this user's application menu (Linux, freedesktop): a .desktop entry that starts
# the app from this folder, and its icon at every size. Run it again after moving the folder.
# Undo: rm ~/.local/share/applications/sfumato.desktop ~/.local/share/icons/hicolor/*/apps/sfumato.*
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data="${XDG_DATA_HOME:-$HOME/.local/share}"
src="$here/_internal/resources/icons"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
    cp "$src/sfumato-$size.png" "$data/icons/hicolor/${size}x${size}/apps/sfumato.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps" "$data/applications"
cp "$src/sfumato.svg" "$data/icons/hicolor/scalable/apps/sfumato.svg"
cat > "$data/applications/sfumato.desktop" <<ENTRY
[Desktop Entry]
Type=Application
Name=Sfumato
GenericName=Diffusion studio
Comment=Generate images with diffusion models, compare samplers, see where the model was unsure
Exec="$here/Sfumato" %F
Icon=sfumato
Terminal=false
Categories=Graphics;2DGraphics;RasterGraphics;
MimeType=image/png;image/jpeg;image/webp;video/mp4;video/quicktime;video/webm;
StartupWMClass=sfumato
ENTRY
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Sfumato added to the application menu: $data/applications/sfumato.desktop"
