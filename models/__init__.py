"""Network builders: VGGFace, mini-Xception and MobileNetV2 backbones with named task heads."""
import utils  # noqa: F401  (sets TensorFlow environment switches before keras is imported)
from models.net import BACKBONES, ModelSpec, build_net, feature_model, trunk_layers  # noqa: E402
from models.vggface import WeightsError  # noqa: E402

__all__ = ["BACKBONES", "ModelSpec", "WeightsError", "build_net", "feature_model", "trunk_layers"]
