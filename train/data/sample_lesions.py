"""Drawing one synthetic lesion and photographing it on skin: shapes, colours and noise that only
mimic dermoscopy (not medical images). Used by :mod:`train.data.sample_data`."""

from __future__ import annotations

import cv2
import numpy as np

CANVAS_DETAIL = 0.6  # lesions are drawn at this fraction of photo resolution, then enlarged

# Colours are RGB.
SKIN_FAIR, SKIN_TAN = (238, 196, 176), (204, 150, 116)
TAN, LIGHT_BROWN, BROWN, DARK_BROWN = (192, 146, 104), (166, 114, 78), (124, 80, 54), (82, 52, 36)
BLACK, BLUE_GREY, REGRESSION = (38, 28, 30), (104, 112, 140), (222, 204, 198)
PINK, PEARL, VESSEL = (226, 150, 152), (238, 200, 196), (172, 30, 44)
RED, PURPLE, SEPTUM = (196, 40, 56), (104, 40, 96), (222, 176, 176)
RED_PATCH, SCALE, SCAR, MILIUM, HAIR = (206, 98, 92), (240, 230, 210), (236, 220, 206), (232, 218, 180), (44, 32, 28)


# ---------------------------------------------------------------- drawing one lesion


def draw_lesion(label: str, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Square float32 canvases centred on the lesion: colour (RGB) and opacity."""
    low, high = {"nv": (80, 170), "mel": (95, 200), "bkl": (85, 185), "bcc": (85, 170),
                 "akiec": (90, 185), "df": (50, 100), "vasc": (75, 150)}[label]  # fmt: skip
    radius = rng.uniform(low, high) * scale
    side = int(2 * 1.75 * radius) + 8
    rgb, alpha = _PAINTERS[label](rng, side, radius)
    rgb = rgb * (1 + 0.04 * _noise(rng, side, radius / 5)[..., None])
    return np.clip(rgb, 0, 255).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32)


def _noise(rng: np.random.Generator, side: int, cell: float) -> np.ndarray:
    """Smooth noise with zero mean and unit spread, varying over about `cell` pixels."""
    n = max(2, int(side / max(cell, 1.0)) + 2)
    field = cv2.resize(rng.standard_normal((n, n), dtype=np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _shape(rng: np.random.Generator, side: int, radius: float, wobble: float, ragged: float, soft: float):
    """Blob mask in [0, 1] and its depth (0 at the border, 1 at the deepest point)."""
    phi = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(phi)
    for k in range(1, 7):
        r += wobble * rng.normal(0, 1 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    for k in range(7, 25) if ragged else ():
        r += ragged * rng.normal(0, 1 / np.sqrt(k)) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, 1.6) * radius
    points = np.stack([side / 2 + r * np.cos(phi), side / 2 + r * np.sin(phi)], axis=1)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    depth /= max(float(depth.max()), 1.0)
    return blur(mask.astype(np.float32) / 255, soft), depth


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.3 else image


def _fill(side: int, colour) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.float32), (side, side, 3)).copy()


def _mix(rgb: np.ndarray, colour, weight: np.ndarray) -> np.ndarray:
    """Blend `colour` into `rgb` with a per-pixel weight in [0, 1]."""
    w = np.clip(weight, 0, 1)[..., None]
    return rgb * (1 - w) + np.array(colour, np.float32) * w


def between(a, b, t: float) -> np.ndarray:
    return np.array(a, np.float32) + t * (np.array(b, np.float32) - np.array(a, np.float32))


def _patches(rng: np.random.Generator, side: int, cell: float, cover: float, mask: np.ndarray, tilt: float = 0.0):
    """Soft patches covering about `cover` of the mask; `tilt` pushes them towards one side."""
    field = _noise(rng, side, cell)
    if tilt:
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
        field += tilt * 4 * (x * np.cos(angle) + y * np.sin(angle))
    inside = field[::3, ::3][mask[::3, ::3] > 0.5]
    if cover <= 0 or inside.size == 0:
        return np.zeros_like(field)
    threshold = np.quantile(inside, 1 - cover)
    return np.clip((field - threshold) / 0.35, 0, 1)


def _lines(rng: np.random.Generator, side: int, radius: float, trunks: int, width: float) -> np.ndarray:
    """Branching thin lines (vessels) near the centre, as a weight in [0, 1]."""
    layer = np.zeros((side, side), np.uint8)
    stack = [(side / 2 + rng.uniform(-0.6, 0.6, 2) * radius, rng.uniform(0, 2 * np.pi), 1.0) for _ in range(trunks)]
    while stack:
        start, heading, thickness = stack.pop()
        points = [start]
        for _ in range(int(rng.integers(4, 10))):
            heading += rng.normal(0, 0.45)
            points.append(points[-1] + radius * 0.09 * np.array([np.cos(heading), np.sin(heading)]))
            if thickness > 0.5 and rng.random() < 0.18 and len(stack) < 40:
                stack.append((points[-1], heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), thickness * 0.7))
        pts = np.round(np.array(points) * 16).astype(np.int32)
        cv2.polylines(layer, [pts], False, 255, max(1, round(width * thickness)), cv2.LINE_AA, shift=4)
    return layer.astype(np.float32) / 255


def _dots(rng: np.random.Generator, side: int, radius: float, count: int, size: float) -> np.ndarray:
    """Small round dots inside the lesion, as a weight in [0, 1]."""
    layer = np.zeros((side, side), np.uint8)
    for _ in range(count):
        centre = np.round((side / 2 + rng.uniform(-0.7, 0.7, 2) * radius) * 16).astype(int)
        r = max(1, round(size * rng.uniform(0.6, 1.4) * 16))
        cv2.circle(layer, tuple(int(v) for v in centre), int(r), 255, -1, cv2.LINE_AA, shift=4)
    return blur(layer.astype(np.float32) / 255, size * 0.3)


def _paint_nv(rng, side, radius):
    """Common naevus: round or oval, evenly brown, smooth border."""
    mask, depth = _shape(rng, side, radius, rng.uniform(0.03, 0.12), 0.0, radius * rng.uniform(0.04, 0.1))
    rgb = _fill(side, between(TAN, DARK_BROWN, rng.uniform(0.2, 0.9)))
    rgb *= (1 + rng.uniform(-0.25, 0.15) * depth + 0.05 * _noise(rng, side, radius / 3))[..., None]
    if rng.random() < 0.6:  # pigment network
        rgb *= (1 - rng.uniform(0.08, 0.2) * (np.abs(_noise(rng, side, radius / 9)) < 0.3))[..., None]
    if rng.random() < 0.3:  # an off-centre darker area, as in atypical naevi
        rgb = _mix(rgb, DARK_BROWN, rng.uniform(0.3, 0.7) * _patches(rng, side, radius / 2, 0.3, mask, tilt=0.6))
    return rgb, mask * rng.uniform(0.8, 0.95)


def _paint_mel(rng, side, radius):
    """Melanoma: asymmetric, several colours, ragged border."""
    wobble, ragged, soft = rng.uniform(0.12, 0.3), rng.uniform(0.03, 0.09), radius * rng.uniform(0.02, 0.07)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    rgb = _fill(side, between(LIGHT_BROWN, DARK_BROWN, rng.uniform(0.2, 1.0)))
    rgb *= (1 + 0.1 * _noise(rng, side, radius / 4))[..., None]
    variegation = rng.uniform(0.25, 1.0)  # some melanomas show few colours
    for colour, cover, strength in (
        (BLACK, rng.uniform(0.05, 0.4), rng.uniform(0.5, 0.9)),
        (BLUE_GREY, rng.uniform(0.0, 0.3), rng.uniform(0.4, 0.75)),
        (REGRESSION, rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.7)),
        (TAN, rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.7)),
        (RED, rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.5)),
    ):
        patches = blur(_patches(rng, side, radius / 2.2, cover * variegation, mask, tilt=0.6), radius * 0.07)
        rgb = _mix(rgb, colour, strength * patches)
    return rgb, mask * rng.uniform(0.85, 0.97)


def _paint_bkl(rng, side, radius):
    """Benign keratosis: waxy tan, furrowed surface, milia-like pale dots, sharp border."""
    wobble, ragged, soft = rng.uniform(0.06, 0.18), rng.uniform(0.0, 0.03), radius * rng.uniform(0.01, 0.04)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    if rng.random() < 0.75:
        base = between(TAN, BROWN, rng.uniform(0, 1))
    else:  # dark variant, easily taken for a naevus or melanoma
        base = between(BROWN, DARK_BROWN, rng.uniform(0, 0.7))
    rgb = _fill(side, base) * (1 + 0.12 * _noise(rng, side, radius / 4))[..., None]
    furrows = blur(np.clip((1 - np.abs(_noise(rng, side, radius / 3.5)) - 0.65) / 0.3, 0, 1), radius * 0.02)
    rgb *= (1 - rng.uniform(0.2, 0.4) * furrows)[..., None]
    rgb = _mix(rgb, MILIUM, 0.6 * _dots(rng, side, radius, int(rng.integers(0, 12)), radius * 0.04))
    return rgb, mask * rng.uniform(0.85, 0.97)


def _paint_bcc(rng, side, radius):
    """Basal cell carcinoma: translucent pearly pink, branching vessels, sometimes blue-grey nests."""
    mask, _ = _shape(rng, side, radius, rng.uniform(0.05, 0.18), 0.0, radius * rng.uniform(0.08, 0.18))
    rgb = _fill(side, between(PINK, PEARL, rng.uniform(0, 1)))
    rgb *= (1 + 0.05 * _noise(rng, side, radius / 3))[..., None]
    rgb = _mix(rgb, (250, 246, 242), 0.5 * np.clip(_noise(rng, side, radius / 3) - 1.2, 0, 1))
    vessels = _lines(rng, side, radius, int(rng.integers(2, 7)), 2.5 * radius / 100)
    rgb = _mix(rgb, VESSEL, rng.uniform(0.5, 0.9) * blur(vessels, radius * 0.008))
    if rng.random() < 0.4:
        rgb = _mix(rgb, BLUE_GREY, 0.7 * _dots(rng, side, radius, int(rng.integers(1, 5)), radius * 0.1))
    if rng.random() < 0.25:  # ulceration
        rgb = _mix(rgb, (120, 40, 36), 0.8 * _dots(rng, side, radius * 0.4, 1, radius * 0.18))
    return rgb, mask * rng.uniform(0.75, 0.92)


def _paint_akiec(rng, side, radius):
    """Actinic keratosis / intraepidermal carcinoma: red, rough and scaly, ill-defined border."""
    wobble, ragged, soft = rng.uniform(0.1, 0.22), rng.uniform(0.02, 0.05), radius * rng.uniform(0.12, 0.25)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    base = between(RED_PATCH, PINK, rng.uniform(0, 0.6))
    if rng.random() < 0.25:  # pigmented variant
        base = between(base, BROWN, rng.uniform(0.2, 0.45))
    rough = 0.1 * _noise(rng, side, radius / 14) + 0.06 * _noise(rng, side, radius / 4)
    rgb = _fill(side, base) * (1 + rough)[..., None]
    flakes = np.clip(_noise(rng, side, radius / 20) + 0.8, 0, 1)
    scale = _patches(rng, side, radius / 7, rng.uniform(0.15, 0.45), mask) * flakes
    rgb = _mix(rgb, SCALE, rng.uniform(0.55, 0.9) * scale)
    return rgb, mask * rng.uniform(0.6, 0.85)


def _paint_df(rng, side, radius):
    """Dermatofibroma: small, firm, light brown rim around a pale scar-like centre."""
    mask, depth = _shape(rng, side, radius, rng.uniform(0.04, 0.12), 0.0, radius * rng.uniform(0.1, 0.2))
    rgb = _fill(side, between(LIGHT_BROWN, BROWN, rng.uniform(0, 0.7)))
    rgb *= (1 - 0.1 * (np.abs(_noise(rng, side, radius / 7)) < 0.3))[..., None]
    centre = np.clip((depth - rng.uniform(0.35, 0.6)) / 0.15 + 0.4 * _noise(rng, side, radius / 4), 0, 1)
    rgb = _mix(rgb, SCAR, rng.uniform(0.7, 0.95) * blur(centre, radius * 0.08))
    return rgb, mask * rng.uniform(0.75, 0.92)


def _paint_vasc(rng, side, radius):
    """Vascular lesion: red to purple lacunae divided by pale septa."""
    count = int(rng.integers(4, 12))
    centres = side / 2 + rng.uniform(-0.55, 0.55, (count, 2)) * radius
    radii = radius * rng.uniform(0.22, 0.45, count)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    # signed distance to each lacuna's edge; the nearest lacuna owns the pixel
    edge = np.stack([np.hypot(x - cx, y - cy) - r for (cx, cy), r in zip(centres, radii)])
    nearest = np.argmin(edge, axis=0)
    first, second = np.partition(edge, 1, axis=0)[:2]
    hue = rng.uniform(0, 1)
    colours = np.array([between(RED, PURPLE, float(np.clip(hue + rng.normal(0, 0.2), 0, 1))) for _ in range(count)])
    rgb = colours[nearest] * rng.uniform(0.7, 1.05, (count, 1))[nearest]
    rgb *= (1 - 0.3 * np.clip(-first / radii[nearest], 0, 1))[..., None]
    septa = np.clip(1 - (second - first) / (radius * rng.uniform(0.03, 0.06)), 0, 1)
    rgb = _mix(rgb, SEPTUM, 0.75 * septa)
    mask = blur((first < 0).astype(np.float32), radius * 0.025)
    return rgb.astype(np.float32), mask * rng.uniform(0.85, 0.97)


_PAINTERS = {
    "akiec": _paint_akiec, "bcc": _paint_bcc, "bkl": _paint_bkl, "df": _paint_df,
    "mel": _paint_mel, "nv": _paint_nv, "vasc": _paint_vasc,
}  # fmt: skip


# ---------------------------------------------------------------- photographing it


def photograph(
    lesion: tuple[np.ndarray, np.ndarray],
    skin_tone: np.ndarray,
    grain: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
) -> np.ndarray:
    """One BGR uint8 photo of the lesion on skin, with a new pose, lighting, focus and hairs."""
    width, height = size
    scale = min(size) / 450
    image = _low_res_map(_skin(rng, skin_tone, width // 4 + 1, height // 4 + 1), size)
    colour, alpha = lesion
    c = colour.shape[0] / 2
    pose = cv2.getRotationMatrix2D((c, c), rng.uniform(0, 360), rng.uniform(0.85, 1.2) / CANVAS_DETAIL)
    pose[:, 2] += np.array([width, height]) * (0.5 + np.clip(rng.normal(0, 0.07, 2), -0.15, 0.15)) - c
    colour = cv2.warpAffine(colour, pose, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, pose, size, flags=cv2.INTER_LINEAR, borderValue=0)
    image = cv2.blendLinear(image, colour, 1 - alpha, alpha)
    if rng.random() < 0.35:
        hairs = _hairs(rng, width, height, scale)
        image = image * (1 - hairs) + hairs * np.array(HAIR, np.float32)
    image *= _low_res_map(_light(rng, width // 4 + 1, height // 4 + 1), size)
    if rng.random() < 0.3:
        image = blur(image, rng.uniform(0.5, 2.2) * scale)
    dx, dy = rng.integers(0, grain.shape[1] - width + 1), rng.integers(0, grain.shape[0] - height + 1)
    image += grain[dy : dy + height, dx : dx + width] * rng.uniform(1.5, 5)
    return cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _low_res_map(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(small.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


def _skin(rng: np.random.Generator, tone: np.ndarray, width: int, height: int) -> np.ndarray:
    """Skin colour with blotchy shading and redness, at low resolution."""
    side = max(width, height)
    shade = 0.035 * _noise(rng, side, side / 4) + 0.015 * _noise(rng, side, side / 20)
    redness = np.clip(_noise(rng, side, side / 6), 0, None) * rng.uniform(0, 0.06)
    image = np.broadcast_to(tone, (side, side, 3)) * (1 + shade)[..., None]
    image[..., 1:] *= (1 - redness)[..., None]
    return image[:height, :width]


def _hairs(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """Gently curved dark hairs as an RGB weight in [0, 1]."""
    layer = np.zeros((height, width), np.uint8)
    t = np.linspace(0, 1, 32)[:, None]
    for _ in range(int(rng.integers(1, 12))):
        start = rng.uniform(0, 1, 2) * (width, height)
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 0.9) * width
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        bend = rng.normal(0, 0.12) * length * np.array([-np.sin(heading), np.cos(heading)])
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * ((start + end) / 2 + bend) + t**2 * end
        thickness = max(1, round(rng.uniform(0.8, 2.5) * scale))
        cv2.polylines(layer, [np.round(curve * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, shift=4)
    weight = layer.astype(np.float32) * (rng.uniform(0.6, 0.9) / 255)
    return cv2.merge([weight, weight, weight])


def _light(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Per-pixel RGB gain: exposure, colour cast, vignette, uneven light, sometimes a dermatoscope rim."""
    y, x = np.ogrid[0:height, 0:width]
    x, y = x / width - 0.5, y / height - 0.5
    cx, cy = rng.normal(0, 0.1, 2)
    gain = 1 - rng.uniform(0, 0.45) * ((x - cx) ** 2 + (y - cy) ** 2) * 2
    angle = rng.uniform(0, 2 * np.pi)
    gain = gain * (1 + rng.uniform(0, 0.15) * (x * np.cos(angle) + y * np.sin(angle)) * 2)
    if rng.random() < 0.25:
        aspect = width / height
        radius = rng.uniform(0.8, 0.97) * 0.5 * np.hypot(aspect, 1)
        distance = np.hypot((x - rng.normal(0, 0.03)) * aspect, y - rng.normal(0, 0.03))
        gain = gain * (1 - 0.93 * np.clip((distance - radius) / (0.03 * radius), 0, 1))
    cast = rng.uniform(0.78, 1.15) * rng.normal(1, 0.03, 3)
    return gain[..., None] * cast
