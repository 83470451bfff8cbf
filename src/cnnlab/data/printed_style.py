"""How varied printed digits are: one :class:`Style` says which share of images gets each
rendering effect, and how strong the geometric ones may be.

``basic`` is the first generator's variation (size, slant, rotation, stretch, weight,
colours, gradient, noise, blur, a cut-off neighbour); ``full`` adds what photographed and
scanned digits show: italic shear, condensed and expanded widths, perspective tilts,
outlined and shadowed text, uneven lighting and vignetting, low resolution scaled up,
JPEG artefacts, motion and defocus blur, background clutter and low-contrast colours;
and, in training only, digits on a disc or plate of their background's colour and
embossed digits. The test domains are always drawn in ``full`` less those two (their
images stay those of generator v4); ``digits-wild:styles=basic`` trains on ``basic``
to measure what the rest buys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

MIN_CONTRAST = 0.35  # luma between digit and background, most images
LOW_CONTRAST = 0.25  # the floor for the low-contrast share


@dataclass(frozen=True)
class Style:
    """Shares in [0, 1] of the images that get each effect, and a few strengths."""

    name: str
    shear: float = 0.12  # largest |shear| (italic, oblique)
    stretch: float = 0.15  # largest |log| of the x stretch (condensed, expanded)
    rotate: float = 15.0  # largest |rotation| in degrees
    weight: float = 0.4  # a heavier stroke (and in full, sometimes a lighter one)
    lighter: float = 0.0  # of those, the share made lighter instead
    neighbour: float = 0.3  # a cut-off neighbouring digit at the side
    gradient: float = 0.35  # a second background colour as a gradient
    noise: float = 0.3
    blur: float = 0.3  # Gaussian
    perspective: float = 0.0  # a tilt out of the page
    outline: float = 0.0  # the digit drawn as its outline only
    shadow: float = 0.0  # a drop shadow under the digit
    lighting: float = 0.0  # uneven light across the image, darker corners
    low_res: float = 0.0  # drawn at 10-20 px, then scaled up
    jpeg: float = 0.0  # JPEG-compressed at quality 20-70
    motion_blur: float = 0.0
    defocus: float = 0.0
    clutter: float = 0.0  # thin lines across the background
    low_contrast: float = 0.0  # colours only LOW_CONTRAST apart
    # Training only (the test draws leave them out, for_test()): kept out of the test
    # domains so that their images stay the same and earlier figures compare.
    plate: float = 0.0  # a disc or plate of the background colour on another colour
    emboss: float = 0.0  # pressed into the surface: a lit and a shadowed edge, no ink
    # The most legibility-taking effects one image may get (noise, blurs, low contrast,
    # outline, clutter, low resolution, JPEG); the rest it drew are dropped.
    at_most: int = 9

    def key(self) -> dict[str, object]:
        return asdict(self)

    def for_test(self) -> Style:
        """This style without the effects only training draws."""
        return replace(self, plate=0.0, emboss=0.0)


BASIC = Style("basic")
FULL = Style(
    "full",
    shear=0.3,
    stretch=0.35,
    weight=0.55,
    lighter=0.3,
    perspective=0.4,
    outline=0.08,
    shadow=0.12,
    lighting=0.3,
    low_res=0.2,
    jpeg=0.3,
    motion_blur=0.12,
    defocus=0.12,
    clutter=0.2,
    low_contrast=0.2,
    plate=0.15,
    emboss=0.05,
    at_most=2,
)
STYLES = {s.name: s for s in (FULL, BASIC)}
EFFECTS = tuple(f.name for f in fields(Style) if f.name not in ("name", "at_most"))
