"""Builders for the 10 SUN RGB-D test classes, extra classes of the 37 and unlabelled clutter.

Each builder takes a ``np.random.Generator`` and returns a list of ``Part`` s
in the object frame (x = front, y = left, z = up, origin at the footprint
centre on the floor). Proportions, part counts, styles, colours and textures
are random; the class is carried by the arrangement of parts (see
docs/synthetic.md for which cues separate which classes). A builder is keyed
by its *kind* (``wardrobe``, ``suitcase``, ...); ``KINDS`` gives each kind's
class among SUN RGB-D's 37 and ``RAW_NAMES`` the raw names annotators write
for it, which the converter's name table maps back to that class.
"""
from typing import Callable, Dict, List, Tuple

import numpy as np

from gsclip_mm.structures.categories import SUNRGBD37_CLASSES, SUNRGBD_CLASSES
from .meshes import (CERAMICS, FABRICS, METALS, PAINTS, TEX_FABRIC, TEX_PLAIN, TEX_STRIPES, Material, Part, box,
                     cylinder, ellipsoid, fabric, jitter, pick, rotated, wood)

# The zero-shot test classes (mmdetection3d's 10) and the extra classes the
# scenes hold, so that the 37-class training vocabulary has more than the 10.
TEST_CLASSES = SUNRGBD_CLASSES
EXTRA_CLASSES = ('cabinet', 'lamp', 'pillow', 'box', 'bag', 'tv', 'sink')
CLASSES = TEST_CLASSES + EXTRA_CLASSES
assert set(CLASSES) <= set(SUNRGBD37_CLASSES)

# Kind -> class; a kind is a builder (or an attached part) with its own names.
KINDS: Dict[str, str] = dict(
    {c: c for c in TEST_CLASSES}, cabinet='cabinet', wardrobe='cabinet',
    table_lamp='lamp', floor_lamp='lamp', pillow='pillow', box='box',
    boxes='box', backpack='bag', suitcase='bag', tv='tv', sink='sink')

# Kind -> (raw name, probability): what SUN RGB-D's annotators wrote, variants
# included ('nightstand', 'chairs', 'bookcase'): the converter's table
# (converters/sunrgbd37_mapping.json) maps each to KINDS[kind], as tested.
RAW_NAMES: Dict[str, Tuple[Tuple[str, float], ...]] = dict(
    bed=(('bed', 1.0), ),
    table=(('table', 0.8), ('coffee_table', 0.1), ('side_table', 0.05),
           ('dining_table', 0.05)),
    sofa=(('sofa', 0.85), ('couch', 0.15)),
    chair=(('chair', 0.85), ('office_chair', 0.1), ('chairs', 0.05)),
    toilet=(('toilet', 1.0), ),
    desk=(('desk', 0.9), ('computer_desk', 0.1)),
    dresser=(('dresser', 1.0), ),
    night_stand=(('night_stand', 0.75), ('nightstand', 0.25)),
    bookshelf=(('bookshelf', 0.8), ('bookcase', 0.1), ('book_shelf', 0.1)),
    bathtub=(('bathtub', 0.9), ('bath_tub', 0.1)),
    cabinet=(('cabinet', 0.75), ('cupboard', 0.15), ('cabinets', 0.1)),
    wardrobe=(('wardrobe', 0.5), ('cabinet', 0.5)),
    table_lamp=(('lamp', 0.85), ('table_lamp', 0.15)),
    floor_lamp=(('lamp', 0.85), ('floor_lamp', 0.15)),
    pillow=(('pillow', 0.8), ('cushion', 0.15), ('pillows', 0.05)),
    box=(('box', 0.8), ('cardboard_box', 0.2)),
    boxes=(('boxes', 0.7), ('box', 0.3)),
    backpack=(('backpack', 0.6), ('bag', 0.4)),
    suitcase=(('suitcase', 0.6), ('bag', 0.4)),
    tv=(('tv', 0.8), ('television', 0.2)),
    sink=(('sink', 0.8), ('bathroom_sink', 0.2)))


def raw_name(rng: np.random.Generator, kind: str) -> str:
    """One raw annotation name for an object of ``kind``."""
    names, probs = zip(*RAW_NAMES[kind])
    return names[int(rng.choice(len(names), p=np.asarray(probs) / sum(probs)))]


def _legs(rng, dx, dy, h, t, mat, inset=0.0, round_=False) -> List[Part]:
    """Four legs of height ``h`` under a dx x dy rectangle."""
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            c = (sx * (dx / 2 - t / 2 - inset), sy * (dy / 2 - t / 2 - inset),
                 h / 2)
            parts.append(cylinder(c, t / 2, h, mat, 8) if round_ else
                         box(c, (t, t, h), mat))
    return parts


def _drawer_fronts(rng, x_front, y0, y1, z0, z1, rows, cols, mat,
                   handle_mat) -> List[Part]:
    """A grid of drawer fronts (proud of the face at ``x_front``) with
    handles or knobs."""
    parts = []
    gap = 0.012
    hs = (z1 - z0) / rows
    ws = (y1 - y0) / cols
    knob = rng.random() < 0.5
    for r in range(rows):
        for c in range(cols):
            zc = z0 + (r + 0.5) * hs
            yc = y0 + (c + 0.5) * ws
            parts.append(box((x_front + 0.008, yc, zc),
                             (0.016, ws - gap, hs - gap), mat))
            if knob:
                for k in ((-0.25, 0.25) if ws > 0.5 else (0.0,)):
                    parts.append(box((x_front + 0.025, yc + k * ws, zc),
                                     (0.02, 0.025, 0.025), handle_mat))
            else:
                parts.append(box((x_front + 0.022, yc, zc + 0.2 * hs),
                                 (0.014, min(0.5 * ws, 0.16), 0.018),
                                 handle_mat))
    return parts


def build_bed(rng) -> List[Part]:
    length = rng.uniform(1.6, 2.15)
    width = rng.uniform(0.8, 1.9)
    hf = rng.uniform(0.18, 0.35)
    tm = rng.uniform(0.16, 0.28)
    frame = wood(rng) if rng.random() < 0.7 else fabric(rng)
    parts = []
    if rng.random() < 0.5:  # solid base
        parts.append(box((0, 0, hf / 2), (length, width, hf), frame))
    else:  # side rails on short legs
        rail = rng.uniform(0.1, 0.18)
        parts.append(box((0, 0, hf - rail / 2), (length, width, rail), frame))
        parts += _legs(rng, length, width, hf - rail, 0.07, frame)
    mattress = Material(jitter(rng, (0.93, 0.92, 0.88), 0.04))
    ztop = hf + tm
    parts.append(box((0.02, 0, hf + tm / 2), (length - 0.08, width - 0.05, tm),
                     mattress))
    if rng.random() < 0.8:  # headboard (platform beds have none)
        head_h = rng.uniform(0.8, 1.25)
        parts.append(box((-length / 2 + 0.03, 0, head_h / 2),
                         (0.06, width + 0.04, head_h), frame))
    if rng.random() < 0.35:  # footboard
        fh = rng.uniform(ztop - 0.1, ztop + 0.2)
        parts.append(box((length / 2 - 0.03, 0, fh / 2), (0.06, width, fh),
                         frame))
    if rng.random() < 0.85:  # blanket over the foot end, draped on the sides
        blanket = fabric(rng)
        if rng.random() < 0.4:
            blanket.tex, blanket.scale = TEX_STRIPES, rng.uniform(0.05, 0.15)
        # it ends 5 cm short of the pillows (which end 0.5 m from the head)
        bl = min(rng.uniform(0.55, 0.8) * (length - 0.08), length - 0.59)
        bx = length / 2 - 0.04 - bl / 2
        parts.append(box((bx, 0, ztop + 0.02), (bl, width + 0.02, 0.04),
                         blanket))
        drop = rng.uniform(0.1, tm + 0.05)
        for s in (-1, 1):
            parts.append(box((bx, s * (width / 2 + 0.02), ztop + 0.04 - drop / 2),
                             (bl, 0.02, drop), blanket))
    n_pillows = 1 if width < 1.3 else 2
    pillow = (Material(jitter(rng, (0.95, 0.95, 0.93), 0.04))
              if rng.random() < 0.6 else fabric(rng))
    pw = (width - 0.15) / n_pillows
    for i in range(n_pillows):  # annotated as pillows, resting on the mattress
        yc = -width / 2 + 0.075 + (i + 0.5) * pw
        rz = rng.uniform(0.07, 0.1)
        part = ellipsoid((-length / 2 + 0.3, yc, ztop + rz),
                         (0.2, pw / 2 - 0.02, rz), pillow)
        part.kind = 'pillow'
        parts.append(part)
    return parts


def build_table(rng) -> List[Part]:
    top_mat = wood(rng, axis=int(rng.integers(2)))
    leg_mat = top_mat if rng.random() < 0.6 else pick(rng, METALS)
    coffee = rng.random() < 0.3
    h = rng.uniform(0.38, 0.5) if coffee else rng.uniform(0.68, 0.78)
    tt = rng.uniform(0.025, 0.06)
    parts = []
    if rng.random() < 0.25:  # round top on a pedestal
        r = rng.uniform(0.4, 0.6)
        parts.append(cylinder((0, 0, h - tt / 2), r, tt, top_mat, 24))
        parts.append(cylinder((0, 0, (h - tt) / 2), 0.05, h - tt, leg_mat, 10))
        if rng.random() < 0.5:
            parts.append(cylinder((0, 0, 0.02), r * 0.55, 0.04, leg_mat, 18))
        else:
            for a in (0, np.pi / 2):
                parts.append(rotated(box((0, 0, 0.025), (r * 1.2, 0.06, 0.05),
                                         leg_mat), a, (0, 0, 1), (0, 0, 0)))
        return parts
    dx = rng.uniform(0.55, 1.0)
    dy = rng.uniform(max(0.8, dx), 1.8)
    if rng.random() < 0.2:  # small side table, night-stand sized
        dx = dy = rng.uniform(0.4, 0.6)
        h = rng.uniform(0.45, 0.7)
    elif coffee:
        dx, dy = dx * 0.8, dy * 0.8
    parts.append(box((0, 0, h - tt / 2), (dx, dy, tt), top_mat))
    t = rng.uniform(0.035, 0.08)
    inset = rng.uniform(0.0, 0.1)
    parts += _legs(rng, dx, dy, h - tt, t, leg_mat, inset,
                   round_=rng.random() < 0.3)
    if rng.random() < 0.5:  # apron
        ah = rng.uniform(0.06, 0.1)
        for s in (-1, 1):
            parts.append(box((s * (dx / 2 - inset - t / 2), 0, h - tt - ah / 2),
                             (0.02, dy - 2 * inset - t, ah), leg_mat))
            parts.append(box((0, s * (dy / 2 - inset - t / 2), h - tt - ah / 2),
                             (dx - 2 * inset - t, 0.02, ah), leg_mat))
    if coffee and rng.random() < 0.5:  # lower shelf
        parts.append(box((0, 0, 0.12), (dx - 2 * inset, dy - 2 * inset, 0.02),
                         top_mat))
    return parts


def build_desk(rng) -> List[Part]:
    dx = rng.uniform(0.5, 0.8)
    dy = rng.uniform(0.85, 1.7)
    h = rng.uniform(0.72, 0.77)
    tt = rng.uniform(0.025, 0.045)
    mat = wood(rng, axis=1)
    body = mat if rng.random() < 0.7 else wood(rng)
    handle = pick(rng, METALS)
    parts = [box((0, 0, h - tt / 2), (dx, dy, tt), mat)]
    pw = rng.uniform(0.38, 0.46)
    sides = [1] if rng.random() < 0.75 or dy < 1.2 else [-1, 1]
    if rng.random() < 0.5:
        sides = [-s for s in sides]
    for s in sides:  # drawer pedestal(s), floor to top
        yc = s * (dy / 2 - pw / 2)
        ph = h - tt
        parts.append(box((-0.02, yc, ph / 2), (dx - 0.04, pw, ph), body))
        rows = int(rng.integers(2, 5))
        parts += _drawer_fronts(rng, dx / 2 - 0.04, yc - pw / 2 + 0.01,
                                yc + pw / 2 - 0.01, 0.06, ph - 0.02, rows, 1,
                                body, handle)
    if len(sides) == 1:  # other end: side panel or two legs
        s = -sides[0]
        if rng.random() < 0.6:
            parts.append(box((0, s * (dy / 2 - 0.015), (h - tt) / 2),
                             (dx, 0.03, h - tt), body))
        else:
            for sx in (-1, 1):
                parts.append(box((sx * (dx / 2 - 0.03), s * (dy / 2 - 0.03),
                                  (h - tt) / 2), (0.05, 0.05, h - tt), body))
    mh = rng.uniform(0.3, 0.55)  # modesty panel at the back
    parts.append(box((-dx / 2 + 0.03, 0, h - tt - mh / 2),
                     (0.02, dy - 0.05, mh), body))
    if rng.random() < 0.4:  # keyboard tray / centre drawer
        parts.append(box((dx / 2 - 0.03, 0, h - tt - 0.05),
                         (0.02, min(0.6, dy - 2 * pw), 0.08), body))
    return parts


def build_chair(rng) -> List[Part]:
    sw = rng.uniform(0.4, 0.55)
    sd = rng.uniform(0.4, 0.52)
    sh = rng.uniform(0.42, 0.48)
    st = rng.uniform(0.04, 0.08)
    frame = wood(rng) if rng.random() < 0.6 else pick(rng, PAINTS)
    seat = fabric(rng) if rng.random() < 0.5 else frame
    parts = []
    office = rng.random() < 0.3
    if office:
        metal = pick(rng, METALS)
        parts.append(cylinder((0, 0, (sh - st) / 2 + 0.03), 0.025,
                              sh - st - 0.06, metal, 10))
        for k in range(5):
            a = 2 * np.pi * k / 5 + rng.uniform(0, 0.3)
            leg = box((0.16, 0, 0.045), (0.3, 0.04, 0.03), metal)
            parts.append(rotated(leg, a, (0, 0, 1), (0, 0, 0)))
            parts.append(cylinder((0.29 * np.cos(a), 0.29 * np.sin(a), 0.015),
                                  0.02, 0.03, metal, 8))
    else:
        parts += _legs(rng, sd, sw, sh - st, rng.uniform(0.025, 0.045), frame,
                       round_=rng.random() < 0.3)
        if rng.random() < 0.4:  # stretchers
            for s in (-1, 1):
                parts.append(box((0, s * (sw / 2 - 0.02), 0.18),
                                 (sd - 0.04, 0.02, 0.02), frame))
    parts.append(box((0, 0, sh - st / 2), (sd, sw, st), seat))
    bh = rng.uniform(0.35, 0.55)
    bt = rng.uniform(0.025, 0.06)
    back = []
    if rng.random() < 0.55:  # solid back
        back.append(box((-sd / 2 + bt / 2, 0, sh + bh / 2), (bt, sw, bh),
                        seat if office else frame))
    else:  # posts and slats
        for s in (-1, 1):
            back.append(box((-sd / 2 + 0.02, s * (sw / 2 - 0.02), sh + bh / 2),
                            (0.035, 0.035, bh), frame))
        n = int(rng.integers(1, 4))
        for i in range(n):
            z = sh + bh * (1 - (i + 0.5) * 0.22)
            back.append(box((-sd / 2 + 0.02, 0, z), (0.025, sw - 0.04, 0.06),
                            frame))
    tilt = rng.uniform(0.05, 0.2)
    parts += [rotated(p, -tilt, (0, 1, 0), (-sd / 2, 0, sh)) for p in back]
    if rng.random() < 0.4:  # arms
        ah = rng.uniform(0.18, 0.25)
        for s in (-1, 1):
            parts.append(box((0, s * (sw / 2 - 0.02), sh + ah),
                             (sd * 0.85, 0.05, 0.03), frame))
            parts.append(box((sd * 0.3, s * (sw / 2 - 0.02), sh + ah / 2),
                             (0.03, 0.03, ah), frame))
    return parts


def build_sofa(rng) -> List[Part]:
    w = rng.uniform(1.2, 2.4)
    d = rng.uniform(0.75, 1.0)
    legs = rng.uniform(0.05, 0.12) if rng.random() < 0.5 else 0.0
    seat_h = rng.uniform(0.4, 0.46)
    back_h = rng.uniform(0.7, 0.95)
    arm_h = rng.uniform(0.55, 0.68)
    arm_w = rng.uniform(0.1, 0.25)
    mat = fabric(rng)
    if rng.random() < 0.15:
        mat = pick(rng, np.array([[0.35, 0.2, 0.12], [0.1, 0.1, 0.1]]),
                   TEX_PLAIN)  # leather
    cushion = mat if rng.random() < 0.7 else fabric(rng)
    parts = []
    base_h = seat_h - 0.14
    if legs > 0:
        parts += _legs(rng, d - 0.1, w - 0.1, legs, 0.04, pick(rng, METALS))
    parts.append(box((0, 0, legs + (base_h - legs) / 2), (d, w, base_h - legs),
                     mat))
    bt = rng.uniform(0.15, 0.25)
    parts.append(box((-d / 2 + bt / 2, 0, (back_h + legs) / 2),
                     (bt, w, back_h - legs), mat))
    for s in (-1, 1):
        parts.append(box((0, s * (w / 2 - arm_w / 2), (arm_h + legs) / 2),
                         (d, arm_w, arm_h - legs), mat))
    n = int(rng.integers(2, 4)) if w > 1.7 else 2
    inner = w - 2 * arm_w
    cw = inner / n
    for i in range(n):
        yc = -inner / 2 + (i + 0.5) * cw
        parts.append(box((bt / 2, yc, base_h + 0.07),
                         (d - bt - 0.02, cw - 0.015, 0.14), cushion))
        parts.append(rotated(box((-d / 2 + bt + 0.07, yc,
                                  base_h + 0.14 + 0.2),
                                 (0.14, cw - 0.02, 0.38), cushion),
                             -0.15, (0, 1, 0),
                             (-d / 2 + bt, yc, base_h + 0.14)))
    if rng.random() < 0.6:  # throw pillows on the seat, clear of the back
        parts += _throw_pillows(rng, -d / 2 + bt + 0.14, base_h + 0.14, inner)
    return parts


def _throw_pillows(rng, x_back, z_seat, inner) -> List[Part]:
    """One or two upright pillows (annotated as pillows) standing on a seat at
    ``z_seat``, 3 cm in front of the back at ``x_back``, within ``inner``
    width: the gaps keep the seat and back out of their boxes."""
    rx, ry, rz = 0.08, rng.uniform(0.16, 0.21), rng.uniform(0.15, 0.19)
    slot = inner / 2 - ry - 0.04
    ys = [-slot, slot] if slot > ry + 0.05 and rng.random() < 0.5 else \
        [rng.uniform(-slot, slot)]
    mat = fabric(rng)
    parts = []
    for y in ys:
        p = ellipsoid((x_back + 0.03 + rx, y, z_seat + rz), (rx, ry, rz), mat)
        p.kind = 'pillow'
        parts.append(p)
    return parts


def build_toilet(rng) -> List[Part]:
    cer = pick(rng, CERAMICS[:4] if rng.random() < 0.92 else CERAMICS)
    bh = rng.uniform(0.37, 0.42)
    rx = rng.uniform(0.18, 0.22)
    ry = rng.uniform(0.16, 0.19)
    bx = rng.uniform(0.05, 0.1)
    parts = [cylinder((bx, 0, bh / 2), 1.0, bh, cer, 20, sx=rx, sy=ry,
                      top_scale=1.0),
             # pedestal narrower at the floor
             cylinder((bx - 0.02, 0, 0.1), 1.0, 0.2, cer, 16, sx=rx * 0.7,
                      sy=ry * 0.65)]
    # water: a dark disc just below the rim
    parts.append(cylinder((bx + 0.01, 0, bh - 0.01), 1.0, 0.022,
                          Material(jitter(rng, (0.55, 0.62, 0.66), 0.05)), 20,
                          sx=rx * 0.7, sy=ry * 0.68))
    seat = cer if rng.random() < 0.7 else pick(rng, PAINTS)
    parts.append(cylinder((bx, 0, bh + 0.015), 1.0, 0.03, seat, 20,
                          sx=rx * 1.02, sy=ry * 1.02))
    lid_up = rng.random() < 0.5
    tank = rng.random() < 0.85
    tw = rng.uniform(0.36, 0.48)
    td = rng.uniform(0.16, 0.22)
    tx = bx - rx - td / 2 + 0.05
    if tank:
        th = rng.uniform(0.3, 0.4)
        parts.append(box((tx, 0, bh + th / 2 - 0.02), (td, tw, th), cer))
        parts.append(box((tx, 0, bh + th - 0.01), (td + 0.02, tw + 0.02, 0.025),
                         cer))
        parts.append(box((tx - 0.02, 0, bh / 2), (td, tw * 0.6, bh), cer))
        parts.append(box((tx + td / 2 + 0.005, tw * 0.3, bh + th - 0.06),
                         (0.01, 0.05, 0.02), pick(rng, METALS)))
    else:  # wall-hung: no tank, a box-shaped back and a flush plate
        parts.append(box((tx, 0, bh / 2 + 0.1), (td, tw * 0.7, bh + 0.2), cer))
    if lid_up:
        lid = cylinder((0, 0, 0), 1.0, 0.02, seat, 20, sx=rx, sy=ry)
        # rotate the flat lid upright (about y), lean it on the tank front
        lid = rotated(lid, np.pi / 2 - 0.1, (0, 1, 0), (0, 0, 0))
        lid.mesh.apply_translation((tx + td / 2 + 0.03, 0, bh + 0.03 + rx))
        parts.append(lid)
    else:
        parts.append(cylinder((bx, 0, bh + 0.04), 1.0, 0.02, seat, 20,
                              sx=rx, sy=ry))
    return parts


def build_bathtub(rng) -> List[Part]:
    length = rng.uniform(1.2, 1.9)
    d = rng.uniform(0.65, 0.9)
    h = rng.uniform(0.45, 0.62)
    t = rng.uniform(0.06, 0.1)
    cer = pick(rng, CERAMICS[:4])
    outer = cer if rng.random() < 0.7 else pick(rng, PAINTS)
    feet = rng.random() < 0.25
    z0 = 0.12 if feet else 0.0
    parts = []
    if feet:
        parts += _legs(rng, d - 0.1, length - 0.2, z0, 0.06, pick(rng, METALS))
    hb = h - z0
    parts.append(box((0, 0, z0 + 0.05), (d, length, 0.1), cer))  # bottom
    for s in (-1, 1):  # long walls (front/back) and ends
        parts.append(box((s * (d / 2 - t / 2), 0, z0 + hb / 2), (t, length, hb),
                         outer if s > 0 else cer))
        parts.append(box((0, s * (length / 2 - t / 2), z0 + hb / 2),
                         (d - 2 * t, t, hb), cer))
    # sloped back rest inside one end
    parts.append(rotated(box((0, length / 2 - t - 0.1, z0 + hb / 2),
                             (d - 2 * t - 0.01, 0.04, hb * 0.9), cer),
                         0.5, (1, 0, 0), (0, length / 2 - t, z0 + 0.1)))
    metal = pick(rng, METALS[:1])
    parts.append(cylinder((-d / 2 + t / 2, -length / 2 + t + 0.1, h + 0.06),
                          0.02, 0.12, metal, 8))
    parts.append(box((-d / 2 + t / 2 + 0.06, -length / 2 + t + 0.1, h + 0.11),
                     (0.12, 0.03, 0.03), metal))
    return parts


def build_dresser(rng) -> List[Part]:
    # proportions, not sizes, set it apart from a night stand: wide and low
    # (width 1.2-1.9 x height) or a tall narrow chest (height 1.4-2 x width)
    tall = rng.random() < 0.25
    if tall:
        w = rng.uniform(0.55, 0.85)
        h = w * rng.uniform(1.4, 2.0)
    else:
        h = rng.uniform(0.7, 1.0)
        w = min(h * rng.uniform(1.2, 1.9), 1.7)
    d = rng.uniform(0.4, 0.6)
    mat = wood(rng, axis=int(rng.integers(2)))
    handle = pick(rng, METALS)
    base = rng.uniform(0.04, 0.12)
    parts = []
    if rng.random() < 0.5:
        parts.append(box((-0.01, 0, base / 2), (d - 0.04, w - 0.04, base), mat))
    else:
        parts += _legs(rng, d - 0.02, w - 0.02, base, 0.05, mat)
    parts.append(box((0, 0, base + (h - base - 0.03) / 2),
                     (d, w, h - base - 0.03), mat))
    parts.append(box((0.01, 0, h - 0.015), (d + 0.03, w + 0.03, 0.03), mat))
    cols = 1 if w < 0.9 else int(rng.integers(2, 4))
    rows = int(rng.integers(4, 7)) if tall else int(rng.integers(3, 5))
    parts += _drawer_fronts(rng, d / 2, -w / 2 + 0.02, w / 2 - 0.02,
                            base + 0.02, h - 0.05, rows, cols, mat, handle)
    return parts


def build_night_stand(rng) -> List[Part]:
    w = rng.uniform(0.35, 0.65)
    d = rng.uniform(0.33, 0.5)
    h = w * rng.uniform(0.9, 1.4)  # about as tall as wide
    mat = wood(rng, axis=int(rng.integers(2)))
    handle = pick(rng, METALS)
    legs = rng.uniform(0.1, 0.2) if rng.random() < 0.55 else 0.0
    parts = []
    if legs:
        parts += _legs(rng, d - 0.04, w - 0.04, legs, 0.035, mat, 0.0,
                       round_=rng.random() < 0.5)
    zb = legs
    n_drawers = int(rng.integers(1, 3))
    # an open shelf below the drawer(s) unless the stand is on legs
    shelf = rng.random() < (0.5 if legs else 0.85)
    dh = min(0.16 * n_drawers, 0.45 * (h - legs))
    t = 0.02
    if shelf:  # open shelf below the drawer(s): sides, bottom, back only
        zd = h - dh
        for s in (-1, 1):
            parts.append(box((0, s * (w / 2 - t / 2), (zb + zd) / 2),
                             (d, t, zd - zb), mat))
        parts.append(box((0, 0, zb + t / 2), (d, w, t), mat))
        parts.append(box((-d / 2 + t / 2, 0, (zb + zd) / 2), (t, w, zd - zb),
                         mat))
        parts.append(box((0, 0, (zd + h) / 2), (d, w, h - zd), mat))
        parts += _drawer_fronts(rng, d / 2, -w / 2 + t, w / 2 - t, zd + 0.01,
                                h - 0.02, n_drawers, 1, mat, handle)
    else:  # closed body: drawers down to the base (or a door below)
        parts.append(box((0, 0, (zb + h) / 2), (d, w, h - zb), mat))
        rows = int(rng.integers(2, 4)) if not legs else n_drawers
        parts += _drawer_fronts(rng, d / 2, -w / 2 + t, w / 2 - t, zb + 0.02,
                                h - 0.02, rows, 1, mat, handle)
    parts.append(box((0.005, 0, h + 0.01), (d + 0.01, w + 0.01, 0.02), mat))
    return parts


def build_bookshelf(rng) -> List[Part]:
    low = rng.random() < 0.3
    w = rng.uniform(0.9, 1.6) if low else rng.uniform(0.6, 1.2)
    d = rng.uniform(0.25, 0.4)
    h = rng.uniform(0.75, 1.05) if low else rng.uniform(1.2, 2.0)
    t = rng.uniform(0.018, 0.03)
    mat = wood(rng, axis=2)
    parts = []
    for s in (-1, 1):
        parts.append(box((0, s * (w / 2 - t / 2), h / 2), (d, t, h), mat))
    parts.append(box((-d / 2 + 0.005, 0, h / 2), (0.01, w, h), mat))  # back
    n = max(2, int(round(h / rng.uniform(0.3, 0.4))))
    gap = (h - t) / n
    for i in range(n + 1):
        parts.append(box((0, 0, i * gap + t / 2), (d, w - 2 * t, t), mat))
    inner = w - 2 * t
    for i in range(n):  # books on each shelf
        y = -inner / 2 + rng.uniform(0, 0.1)
        end = inner / 2 - rng.uniform(0.0, 0.3) * inner
        while True:
            bt = rng.uniform(0.02, 0.06)
            if y + bt > end:
                break
            bh = rng.uniform(0.6, 0.92) * (gap - t)
            bd = rng.uniform(0.6, 0.9) * d
            col = jitter(rng, FABRICS[rng.integers(len(FABRICS))], 0.25)
            parts.append(box((-d / 2 + 0.01 + bd / 2, y + bt / 2,
                              i * gap + t + bh / 2), (bd, bt, bh),
                             Material(col)))
            y += bt + (rng.uniform(0.0, 0.004) if rng.random() < 0.9
                       else rng.uniform(0.05, 0.2))
    return parts


# ---------------------------------------------------------- extra classes --
def _doors(rng, x_front, y0, y1, z0, z1, n, mat, handle) -> List[Part]:
    """``n`` door panels side by side (proud of the face at ``x_front``),
    each with a vertical bar handle by its opening edge."""
    parts = []
    ws = (y1 - y0) / n
    hh = min(0.3, 0.4 * (z1 - z0))
    for i in range(n):
        yc = y0 + (i + 0.5) * ws
        parts.append(box((x_front + 0.009, yc, (z0 + z1) / 2),
                         (0.018, ws - 0.01, z1 - z0 - 0.01), mat))
        # pairs open in the middle; a single door on a random side
        side = (1 if i == 0 else -1) if n == 2 else rng.choice((-1, 1))
        parts.append(box((x_front + 0.03, yc + side * (ws / 2 - 0.05),
                          z1 - 0.08 - hh / 2 if z1 - z0 > 1.2 else
                          (z0 + z1) / 2), (0.02, 0.02, hh), handle))
    return parts


def _case(rng, w, d, h, mat) -> Tuple[List[Part], float]:
    """Closed carcass on a plinth or legs with a top slab; and the base height."""
    base = rng.uniform(0.04, 0.1)
    if rng.random() < 0.6:
        parts = [box((-0.01, 0, base / 2), (d - 0.04, w - 0.04, base), mat)]
    else:
        parts = _legs(rng, d - 0.02, w - 0.02, base, 0.04, mat)
    parts.append(box((0, 0, base + (h - base - 0.025) / 2),
                     (d, w, h - base - 0.025), mat))
    parts.append(box((0.005, 0, h - 0.0125), (d + 0.01, w + 0.01, 0.025), mat))
    return parts, base


def build_cabinet(rng) -> List[Part]:
    """Low or medium cabinet: doors (and sometimes a drawer row) over a
    plinth; doors, not a grid of drawers, set it apart from a dresser."""
    w, d, h = rng.uniform(0.45, 1.3), rng.uniform(0.35, 0.6), \
        rng.uniform(0.6, 1.1)
    mat = wood(rng, axis=2) if rng.random() < 0.7 else pick(rng, PAINTS)
    handle = pick(rng, METALS)
    parts, base = _case(rng, w, d, h, mat)
    top = h - 0.04
    if rng.random() < 0.3 and h > 0.8:  # a drawer row above the doors
        parts += _drawer_fronts(rng, d / 2, -w / 2 + 0.02, w / 2 - 0.02,
                                top - 0.18, top, 1, 1 if w < 0.9 else 2, mat,
                                handle)
        top -= 0.19
    parts += _doors(rng, d / 2, -w / 2 + 0.02, w / 2 - 0.02, base + 0.02, top,
                    1 if w < 0.7 else 2, mat, handle)
    return parts


def build_wardrobe(rng) -> List[Part]:
    """Tall two- or three-door wardrobe with a cornice (at most 2 m, so that
    it can be wholly in view, as annotated objects are)."""
    w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.5, 0.65), \
        rng.uniform(1.5, 1.95)
    mat = wood(rng, axis=2) if rng.random() < 0.7 else pick(rng, PAINTS)
    handle = pick(rng, METALS)
    parts, base = _case(rng, w, d, h, mat)
    parts.append(box((0.02, 0, h - 0.04), (d + 0.04, w + 0.04, 0.05), mat))
    parts += _doors(rng, d / 2, -w / 2 + 0.02, w / 2 - 0.02, base + 0.02,
                    h - 0.08, 2 if w < 1.3 else 3, mat, handle)
    return parts


def _lamp(rng, floor: bool) -> List[Part]:
    h = rng.uniform(1.3, 1.7) if floor else rng.uniform(0.3, 0.5)
    metal = pick(rng, METALS)
    shade = Material(jitter(rng, (0.95, 0.9, 0.78), 0.05), TEX_FABRIC, 0.005)
    return [cylinder((0, 0, 0.015), 0.08 if not floor else 0.15, 0.03, metal),
            cylinder((0, 0, h * 0.4), 0.012, h * 0.8, metal, 8),
            cylinder((0, 0, h * 0.85), 0.16 if floor else 0.12, h * 0.3, shade,
                     18, top_scale=0.65)]


def build_table_lamp(rng) -> List[Part]:
    """On night stands, dressers and desks."""
    return _lamp(rng, floor=False)


def build_floor_lamp(rng) -> List[Part]:
    return _lamp(rng, floor=True)


def _carton(rng, e, yaw=0.0, z0=0.0) -> List[Part]:
    """One cardboard (or plastic) box of extents ``e`` with a tape strip."""
    mat = pick(rng, np.array([[0.66, 0.5, 0.33], [0.6, 0.45, 0.3],
                              [0.85, 0.85, 0.83], [0.3, 0.4, 0.6]]))
    tape = Material(jitter(rng, mat.colour * 1.15, 0.03))
    parts = [box((0, 0, z0 + e[2] / 2), e, mat),
             box((0, 0, z0 + e[2] + 0.002), (e[0] + 0.004, 0.05, 0.004), tape)]
    return [rotated(p, yaw, (0, 0, 1), (0, 0, 0)) for p in parts]


def build_box(rng) -> List[Part]:
    return _carton(rng, rng.uniform((0.25, 0.25, 0.18), (0.55, 0.5, 0.45)))


def build_boxes(rng) -> List[Part]:
    """A stack of two or three boxes, each smaller and turned a little."""
    e = rng.uniform((0.35, 0.35, 0.2), (0.6, 0.55, 0.4))
    parts, z = [], 0.0
    for _ in range(int(rng.integers(2, 4))):
        parts += _carton(rng, e, rng.uniform(-0.15, 0.15), z)
        z += e[2] + 0.004
        e = e * rng.uniform((0.7, 0.7, 0.8), (0.95, 0.95, 1.0))
    return parts


def build_backpack(rng) -> List[Part]:
    """Upright backpack: rounded body, front pocket, straps at the back."""
    w, d, h = rng.uniform(0.26, 0.34), rng.uniform(0.14, 0.2), \
        rng.uniform(0.36, 0.48)
    mat = pick(rng, np.concatenate([FABRICS, PAINTS[2:4]]), TEX_FABRIC,
               0.005)
    trim = pick(rng, np.concatenate([FABRICS, METALS[1:2]]))
    return [box((0, 0, (h - 0.06) / 2), (d, w, h - 0.06), mat),
            ellipsoid((0, 0, h - 0.06), (d / 2, w / 2, 0.07), mat),
            box((d / 2 + 0.03, 0, h * 0.3), (0.06, w * 0.8, h * 0.4), trim),
            box((-d / 2 - 0.01, -w * 0.3, h * 0.5), (0.02, 0.05, h * 0.75),
                trim),
            box((-d / 2 - 0.01, w * 0.3, h * 0.5), (0.02, 0.05, h * 0.75),
                trim)]


def build_suitcase(rng) -> List[Part]:
    """Standing suitcase on wheels with a pull handle."""
    w, d, h = rng.uniform(0.38, 0.5), rng.uniform(0.2, 0.28), \
        rng.uniform(0.5, 0.72)
    mat = pick(rng, np.concatenate([PAINTS, FABRICS[:5], METALS[:2]]))
    black = Material(jitter(rng, (0.08, 0.08, 0.09), 0.1))
    parts = [box((0, 0, 0.04 + h / 2), (d, w, h), mat),
             box((0, 0, 0.04 + h * 0.5), (d + 0.01, w + 0.01, 0.02), black)]
    for sy in (-1, 1):
        parts.append(box((-d / 2 + 0.02, sy * 0.1, 0.04 + h + 0.08),
                         (0.02, 0.02, 0.16), black))
        for sx in (-1, 1):
            parts.append(cylinder((sx * (d / 2 - 0.03), sy * (w / 2 - 0.03),
                                   0.02), 0.02, 0.04, black, 8))
    parts.append(box((-d / 2 + 0.02, 0, 0.04 + h + 0.16), (0.03, 0.24, 0.02),
                     black))
    return parts


def build_tv(rng) -> List[Part]:
    """Flat screen on a foot; stands on dressers and cabinets."""
    sw = rng.uniform(0.6, 1.1)
    sh = sw * rng.uniform(0.56, 0.6)
    black = Material(jitter(rng, (0.07, 0.07, 0.08), 0.1))
    glass = Material(jitter(rng, (0.12, 0.13, 0.16), 0.1))
    lift = rng.uniform(0.06, 0.12)
    return [box((0, 0, 0.008), (0.2, min(0.5, sw * 0.5), 0.016), black),
            box((-0.02, 0, lift / 2 + 0.01), (0.04, 0.08, lift), black),
            box((0, 0, lift + sh / 2), (0.05, sw, sh), black),
            box((0.026, 0, lift + sh / 2), (0.004, sw - 0.03, sh - 0.03),
                glass)]


def build_sink(rng) -> List[Part]:
    """Pedestal wash basin with a faucet; stands against a bathroom wall."""
    cer = pick(rng, CERAMICS[:4])
    top = rng.uniform(0.8, 0.88)
    bh = rng.uniform(0.14, 0.2)
    rx, ry = rng.uniform(0.2, 0.27), rng.uniform(0.25, 0.33)
    metal = pick(rng, METALS[:1])
    return [cylinder((0, 0, (top - bh) / 2), 0.09, top - bh, cer, 14,
                     top_scale=1.5),
            cylinder((0, 0, top - bh / 2), 1.0, bh, cer, 20, sx=rx, sy=ry,
                     top_scale=1.0),
            cylinder((0.02, 0, top - 0.01), 1.0, 0.022,
                     Material(jitter(rng, (0.7, 0.72, 0.74), 0.05)), 20,
                     sx=rx * 0.75, sy=ry * 0.75),
            box((-rx + 0.04, 0, top + 0.01), (0.08, 0.16, 0.02), cer),
            cylinder((-rx + 0.04, 0, top + 0.08), 0.018, 0.14, metal, 8),
            box((-rx + 0.1, 0, top + 0.14), (0.12, 0.025, 0.025), metal)]


BUILDERS: Dict[str, Callable] = dict(
    bed=build_bed, table=build_table, sofa=build_sofa, chair=build_chair,
    toilet=build_toilet, desk=build_desk, dresser=build_dresser,
    night_stand=build_night_stand, bookshelf=build_bookshelf,
    bathtub=build_bathtub, cabinet=build_cabinet, wardrobe=build_wardrobe,
    table_lamp=build_table_lamp, floor_lamp=build_floor_lamp, box=build_box,
    boxes=build_boxes, backpack=build_backpack, suitcase=build_suitcase,
    tv=build_tv, sink=build_sink)
assert set(BUILDERS) | {'pillow'} == set(KINDS) == set(RAW_NAMES)


# ---------------------------------------------------------------- clutter --
# Unlabelled things: a pot plant, a waste bin, a screen and keyboard (their
# SUN RGB-D names have no class among the 37, so they are not annotated).
def build_plant(rng) -> List[Part]:
    pot_h = rng.uniform(0.2, 0.4)
    r = rng.uniform(0.12, 0.2)
    pot = pick(rng, np.array([[0.66, 0.36, 0.24], [0.9, 0.9, 0.88],
                              [0.2, 0.2, 0.22]]))
    leaf = Material(jitter(rng, (0.2, 0.42, 0.18), 0.15), TEX_FABRIC, 0.02)
    fh = rng.uniform(0.3, 0.9)
    return [cylinder((0, 0, pot_h / 2), r, pot_h, pot, 14, top_scale=1.2),
            ellipsoid((0, 0, pot_h + fh / 2), (r * 1.8, r * 1.8, fh / 2), leaf)]


def build_bin(rng) -> List[Part]:
    """Waste bin."""
    mat = pick(rng, np.concatenate([PAINTS, FABRICS]))
    return [cylinder((0, 0, 0.15), rng.uniform(0.1, 0.18), 0.3, mat, 14)]


def build_monitor(rng) -> List[Part]:
    """Screen and keyboard; sits on a desk or a table."""
    black = Material(jitter(rng, (0.08, 0.08, 0.09), 0.1))
    sw = rng.uniform(0.45, 0.6)
    return [box((0, 0, 0.005), (0.12, 0.2, 0.01), black),
            box((-0.02, 0, 0.12), (0.03, 0.05, 0.22), black),
            box((0, 0, 0.25 + sw * 0.28), (0.03, sw, sw * 0.56), black),
            box((0.25, 0, 0.01), (0.15, 0.42, 0.02),
                Material(jitter(rng, (0.15, 0.15, 0.16), 0.2)))]


CLUTTER: Dict[str, Callable] = dict(plant=build_plant, bin=build_bin,
                                    monitor=build_monitor)
