"""Released weights that ``agecompact fetch NAME`` downloads and converts into the local cache.

After ``agecompact fetch ssrnet-wiki`` the name works offline wherever a model is accepted
(``--model ssrnet-wiki``, ``agecompact.load_model("ssrnet-wiki")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agecompact.paths import cache_home

_SSR = "https://github.com/shamangary/SSR-Net/raw/master/pre-trained"
_SSR_FILE = "ssrnet_3_3_3_64_1.0_1.0/ssrnet_3_3_3_64_1.0_1.0.h5"


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    arch: str
    dataset: str
    url: str
    sha256: str
    size: int
    shared_path: str  # the same file inside ../shared, used by tests and offline mirrors
    licence: str
    margin: float | None = None  # None: the architecture's default
    # gender weights: Platt constants written into the converted model's header (ModelMeta.calibration),
    # fitted by benchmarks/gender_calibration.py (its JSON records the data, the fit and the held-out check)
    calibration: dict | None = None


def _platt(a: float, b: float) -> dict:
    """P(male) = sigmoid(a * clip(score, 0, 1) + b), from benchmarks/gender_calibration.py (results/gender_calibration.json)."""
    return {"method": "platt", "a": a, "b": b, "fitted_on": "UTKFace split 0 (4,000 photos, YuNet + the model's crop)"}


PRETRAINED: dict[str, PretrainedWeights] = {
    w.name: w
    for w in [
        PretrainedWeights("ssrnet-imdb", "ssrnet", "imdb", f"{_SSR}/imdb/{_SSR_FILE}",
                          "f51ac230a68bafdcd9699160f01e4d67a78232419ebcfae8622e0638e6dd4ca3", 326368,
                          "weights/ssrnet/ssrnet_imdb.h5", "Apache-2.0"),
        PretrainedWeights("ssrnet-wiki", "ssrnet", "wiki", f"{_SSR}/wiki/{_SSR_FILE}",
                          "f8b677f1a61fcf1233de0bd942f3172b1397fcbfe0f2784220154af1faf833e0", 326368,
                          "weights/ssrnet/ssrnet_wiki.h5", "Apache-2.0"),
        PretrainedWeights("ssrnet-morph2", "ssrnet", "morph2", f"{_SSR}/morph2/{_SSR_FILE}",
                          "0ad001c42cc2425ffaebd7d374983eba5c89e4f695ab10431c4c95573dc69f4d", 326368,
                          "weights/ssrnet/ssrnet_morph2.h5", "Apache-2.0"),
        PretrainedWeights("ssrnet-megaface-asian", "ssrnet", "megaface_asian", f"{_SSR}/megaface_asian/{_SSR_FILE}",
                          "4bc9348a8ee89dc21d16a4e06a994e287650d068eb9f789578698c7377a07ef7", 326368,
                          "weights/ssrnet/ssrnet_megaface_asian.h5", "Apache-2.0"),
        PretrainedWeights("ssrnet-megaage-asian", "ssrnet", "megaage_asian",
                          "https://github.com/b02901145/SSR-Net_megaage-asian/raw/master/megaage_models/"
                          f"batch_size_50/{_SSR_FILE}",
                          "aaccfd1c76f6c4d2cd2c729dced710b794c2254c4b7d6e6a5e1d59fd7fcb17a9", 326368,
                          "weights/ssrnet_megaage/ssrnet_megaage_asian.h5", "Apache-2.0"),
        PretrainedWeights("ssrnet-gender-imdb", "ssrnet_gender", "imdb", f"{_SSR}/imdb_gender_models/{_SSR_FILE}",
                          "e295148efe9c282a27ebd69a64f6495b1b280728141047866ff81001089b1767", 326344,
                          "weights/ssrnet/ssrnet_gender_imdb.h5", "Apache-2.0",
                          calibration=_platt(2.3833, -0.9984)),
        PretrainedWeights("ssrnet-gender-wiki", "ssrnet_gender", "wiki", f"{_SSR}/wiki_gender_models/{_SSR_FILE}",
                          "2d15bfa72869526d1e2b80385157e34a55fb5a4b184bbac5ea56d623141d7e8c", 326344,
                          "weights/ssrnet/ssrnet_gender_wiki.h5", "Apache-2.0",
                          calibration=_platt(2.2748, -1.5568)),
        PretrainedWeights("ssrnet-gender-morph", "ssrnet_gender", "morph", f"{_SSR}/morph_gender_models/{_SSR_FILE}",
                          "da8f77eadb15653360bde466691eb77516e4c5e0ba5b603959b4c27aa86eeff5", 326344,
                          "weights/ssrnet/ssrnet_gender_morph.h5", "Apache-2.0",
                          calibration=_platt(-2.5633, 0.8335)),  # a < 0: these weights score 1 for *female*
        PretrainedWeights("aec", "aec", "imdb-wiki",
                          "https://github.com/Soyuen/age_estimation_compact_model/raw/main/weights/weights.hdf5",
                          "59575d98cc2c9d6925d461f017b48fa076aa5d078cae039030fba4706d9ab57d", 187688,
                          "weights/aec/aec_weights.hdf5", "MIT"),
        PretrainedWeights("c3ae-full-imdb", "c3ae_full", "imdb",
                          "https://github.com/StevenBanama/C3AE/raw/master/model/imdb_focal_loss_c3ae_v84.h5",
                          "98f3ae534bd8b7b0c992fa2a04077a4c5a6ff4754817e2af7e9954dd6ffc1f9d", 659496,
                          "weights/c3ae/imdb_focal_loss_c3ae_v84.h5", "BSD-2-Clause"),
        PretrainedWeights("c3ae-full-se-imdb", "c3ae_full_se", "imdb",
                          "https://github.com/StevenBanama/C3AE/raw/master/model/c3ae_imdb_v89.h5",
                          "f5c2fb97285e4394165aa13be56d0877fb5cb3a5fd5178d5be842b19476f7996", 773112,
                          "weights/c3ae/c3ae_imdb_v89.h5", "BSD-2-Clause"),
    ]
}


def cached_model_path(name: str) -> Path:
    """Where the converted model file of a pretrained name lives."""
    return cache_home() / "models" / f"{name}.msgpack"
