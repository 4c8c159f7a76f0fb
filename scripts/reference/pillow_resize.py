"""Pillow's antialiased bilinear resize on a patterned RGB image, for
model/src/vision/resample.rs's test (fixture pillow_resize.json): shrinking
by whole and fractional factors, enlarging, and one axis only.

Usage: python scripts/reference/pillow_resize.py > model/tests/fixtures/pillow_resize.json
"""

import json

from PIL import Image

WIDTH, HEIGHT = 101, 73


def pattern():
    image = Image.new("RGB", (WIDTH, HEIGHT))
    image.putdata([
        tuple((x * 7 + y * 13 + c * 101 + (x * y) % 17 + (x ^ y) * c) % 256 for c in range(3))
        for y in range(HEIGHT)
        for x in range(WIDTH)
    ])
    return image


def main():
    image = pattern()
    cases = []
    for size in [(40, 30), (64, 47), (101, 20), (30, 73), (130, 90), (1, 1)]:
        resized = image.resize(size, Image.BILINEAR)
        cases.append({"width": size[0], "height": size[1], "rgb": resized.tobytes().hex()})
    print(json.dumps({"width": WIDTH, "height": HEIGHT, "cases": cases}))


main()
