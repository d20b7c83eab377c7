"""The JSON shapes the API accepts and returns; FastAPI turns them into the /docs page."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageIn(BaseModel):
    """A JSON request body: one image as base64 or as a data URL (``data:image/png;base64,...``)."""

    image: str = Field(description="base64 of the image file (PNG, JPEG, ...) or a data URL")


class Prediction(BaseModel):
    verdict: Literal["digit", "unsure", "not_a_digit"] = Field(
        description="a digit; unsure between two digits (both named in text); or not a digit")
    text: str = Field(description='the answer as a person reads it: "7", "4 or 9?" or "not a digit"')
    digit: int = Field(description="the most probable digit (also given when the verdict is not_a_digit)")
    runner_up: int | None = Field(description="the second most probable digit, when unsure")
    probability: float = Field(description="calibrated probability of what text says first: the "
                                           "digit, or that it is not a digit; in [0, 1]")
    probabilities: list[float] = Field(min_length=10, max_length=11,
                                       description="the probability of each class, in the order of "
                                                   "/api/model's classes (0..9, then 'not a digit')")
    number_of_digits: int | None = Field(description="set when the image seems to hold a number "
                                                     "of several digits: /api/read reads those")
    preprocessed: str = Field(description="base64 PNG of the 28x28 image the model was given")


class AnswerOut(BaseModel):
    verdict: Literal["digit", "unsure", "not_a_digit"]
    text: str = Field(description='"7", "4 or 9?" or "not a digit", as /api/predict says it')
    digit: int
    runner_up: int | None
    probability: float


class MethodOut(BaseModel):
    name: Literal["occlusion"] = Field(description="how each pixel's push was measured")
    score: Literal["log-odds"] = Field(description="what a push moves: log p / (the other classes' "
                                                   "probabilities summed)")
    window: int = Field(description="side of the square blanked (set to 0), in pixels")
    stride: int = Field(description="step between the squares, in pixels")


class FeatureMapsOut(BaseModel):
    layer: str = Field(description='the modules of the first layer, e.g. "features.0.0 → features.0.2"')
    kinds: list[str] = Field(description='e.g. ["Conv2d", "BatchNorm2d", "ReLU"]')
    channels: int = Field(description="feature maps the layer has; the first 16 are sent")
    shape: list[int] = Field(description="[maps sent, height, width]")
    scale: float = Field(description="a value is integer * scale / 255")
    values: list[list[list[int]]] = Field(description="integers in [-255, 255], [map][row][column]")


class SaliencyOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: int = Field(alias="class", description="the class explained: the answer, or the runner-up")
    name: str
    probability: float
    total: float = Field(description="the class's log-odds for the image minus for a blank page")
    shape: list[int] = Field(description="[28, 28]")
    scale: float = Field(description="a value is integer * scale / 255")
    values: list[list[int]] = Field(description="integers in [-255, 255], [row][column]; > 0: blanking "
                                                "the pixel's squares lowered the class's log-odds")


class Explanation(BaseModel):
    answer: AnswerOut
    classes: list[str]
    probabilities: list[float]
    image: list[list[int]] = Field(description="the 28x28 input (0..255, white on black), [row][column]")
    method: MethodOut
    feature_maps: FeatureMapsOut
    saliency: list[SaliencyOut] = Field(min_length=1, max_length=2,
                                        description="the answer's, then the runner-up's when unsure")


class DigitOut(BaseModel):
    digit: int
    probability: float = Field(description="the probability that this digit is right, in [0, 1]")
    box: tuple[int, int, int, int] = Field(description="x, y, width, height in the input image")
    runner_up: int = Field(description="the next most probable digit here")
    unsure: bool = Field(description="the runner-up is close enough to name both: 'digit or runner_up?'")
    preprocessed: str = Field(description="base64 PNG of the ink in the box as a 28x28 picture")


class Reading(BaseModel):
    text: str = Field(description="the digits read, left to right ('' when no digit is found)")
    verdict: str = Field(description="as a person says it: '1234', '1234? (3rd digit 3 or 5)' "
                                     "or 'not a number'")
    probability: float = Field(description="the probability that the whole number is right")
    unsure: bool = Field(description="a digit is in doubt, or the whole number is less than "
                                     "even odds")
    digits: list[DigitOut]
    preprocessed: str = Field(description="base64 PNG of the 32-pixel strip the line reader was given")


class Health(BaseModel):
    status: Literal["ok"]


class ModelInfo(BaseModel):
    run: str = Field(description="the run directory's name")
    dataset: str
    classes: list[str]
    architecture: str
    parameters: int | None = Field(description="trainable weights, as recorded in config.json")
    test_accuracy: float | None = Field(description="accuracy on the test set when trained")
    precision: str | None = Field(description="the precision it was trained in")
    backend: str = Field(description="the runtime executing the network")
    line_reader: str = Field(description="where the reader of whole numbers (/api/read) comes from")
    weights_sha256: str | None = Field(default=None, description="SHA-256 of the run's model.safetensors: "
                                                                 "exactly which weights answer")


class CorrectionFields(BaseModel):
    """What a person says an image shows, beside the image itself."""

    label: str = Field(min_length=1, max_length=40,
                       description='for a digit, "0" to "9" or "not a digit"; for a number, its '
                                   'digits ("721")')
    kind: Literal["digit", "number"] = Field(
        default="digit", description="digit: the image was read by /api/predict; number: by /api/read")


class CorrectionIn(ImageIn, CorrectionFields):
    """A correction as a JSON body: the image as /api/predict takes it, and the right answer."""


class CorrectionOut(BaseModel):
    id: int = Field(description="the correction's number in the store")
    kind: Literal["digit", "number"]
    answer: str = Field(description="what the served model answers for this image")
    label: str = Field(description="what the person says it is")
    right: bool = Field(description="the model's answer (its most likely digit) is the label")
    labelled_digits: int = Field(description="28x28 images stored with a label, for fine-tuning; "
                                             "0 when a number's label has another count of digits")
    model: str = Field(description="the run that answered")
    created: str = Field(description="when it was stored (UTC, ISO 8601)")


class CorrectionsStatus(BaseModel):
    collecting: bool = Field(description="whether POST /api/corrections stores corrections")


class SwapIn(BaseModel):
    run: str = Field(description="a run directory on the server, e.g. one written by digitnet finetune")


class ErrorOut(BaseModel):
    detail: str = Field(description="one line naming the problem and the fix")
