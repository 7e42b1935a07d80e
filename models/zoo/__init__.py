"""Files the project ships: real TFLite models and test images (see README.md for provenance)."""

from pathlib import Path

ZOO = Path(__file__).resolve().parent
PERSON_DETECT = ZOO / "person_detect.tflite"
PERSON_BMP = ZOO / "person.bmp"
NO_PERSON_BMP = ZOO / "no_person.bmp"
