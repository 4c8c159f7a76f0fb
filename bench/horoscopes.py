"""Writes a synthetic house-style horoscope corpus, the training data of the
fine-tuning benchmarks (no real corpus ships offline).

Usage: python bench/horoscopes.py OUT.csv [COUNT]"""

import csv
import random
import sys

random.seed(1)
signs = ["aries", "taurus", "gemini", "cancer", "leo", "virgo", "libra", "scorpio",
         "sagittarius", "capricorn", "aquarius", "pisces"]
opening = ["The Moon moves through your house of work", "Venus smiles on your plans",
           "Mercury asks you to slow down", "The Sun lights up your social sector", "Mars gives you energy"]
middle = ["so finish one task before you start another", "and a friend brings welcome news by evening",
          "so listen more than you speak at meetings", "and money matters look steady this week",
          "so take a short walk before any big decision"]
closing = ["Lucky colour: green.", "Lucky number: seven.", "Keep your evening free for family.",
           "Say yes to a small adventure.", "Rest early tonight."]


def sentence():
    return f"{random.choice(opening)}, {random.choice(middle)}. {random.choice(closing)}"


count = int(sys.argv[2]) if len(sys.argv) > 2 else 48
with open(sys.argv[1], "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["date", "sign", "text", "source"])
    for i in range(count):
        writer.writerow([f"2026-11-{1 + i % 28:02d}", signs[i % 12], f"{sentence()} {sentence()}", "house"])
