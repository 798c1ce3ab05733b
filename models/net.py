"""One builder for every network: a backbone plus one named head per task (one shared trunk, task-specific heads).

Layer names every model shares, used by the pseudo-label code, the demos and the tests:
``preprocess``; per task ``<task>_fc`` (features), ``<task>`` (logits), ``<task>_prediction``
(softmax; for a regression task its values, ``scale * <task>``, the scale its kind gives); for dense-head
backbones also ``common_fc`` and, with several tasks, ``cross_stitch``.
Model outputs are a dict keyed ``<task>_prediction``. Inputs are float RGB (or grey) pixels in
[0, 255]; preprocessing is a layer of the model, so saved models carry it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import keras

from models.layers import CrossStitch, FeatureRegularization, LabelEmbedding, Preprocess
from models.mini_xception import FEATURE_LAYER
from models.registry import BACKBONES, WeightsError, canonical_backbone, trunk_function, weight_loader
from models.regularizers import TaskWeightPenalty
from models.ssrnet import FEATURE_LAYER as SSR_FEATURE_LAYER
from models.ssrnet import ssrnet_heads

log = logging.getLogger(__name__)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a network; stored in each run's config."""

    backbone: str
    tasks: dict  # task -> number of classes, in head order
    input_size: int | None = None
    dropout: bool = False
    bn: bool = False
    weight_decay: float = 0.0
    cross_stitch: bool = True
    weights: str = "none"  # none | pretrained | path to a weights file
    feature_regularization: dict = field(default_factory=dict)  # l21 / trace / nuclear / laplacian / sigma
    label_embedding: int = 0  # LEL-LTN: width of the shared label space (0 = plain softmax heads)
    regression: dict = field(default_factory=dict)  # task -> scale: heads that regress values (utils/kinds.py)

    def __post_init__(self):
        self.backbone = canonical_backbone(self.backbone)
        if isinstance(self.regression, (list, tuple)):  # run folders written before scales were stored: angles
            self.regression = {t: 30.0 for t in self.regression}
        if self.input_size is None:
            self.input_size = BACKBONES[self.backbone].input_size

    @property
    def channels(self) -> int:
        return BACKBONES[self.backbone].channels


def build_net(spec: ModelSpec) -> keras.Model:
    """Build the functional model described by ``spec`` (and load its pretrained trunk weights)."""
    entry = BACKBONES[spec.backbone]
    kind = entry.head
    inp = keras.Input((spec.input_size, spec.input_size, entry.channels), name="image")
    x = Preprocess(entry.preprocess, name="preprocess")(inp)
    reg = keras.regularizers.L2(spec.weight_decay) if spec.weight_decay else None
    L = keras.layers
    tasks = list(spec.tasks)
    fr = spec.feature_regularization
    norms = {k: fr.get(k, 0.0) for k in ("l21", "trace", "nuclear")}
    laplacian = fr.get("laplacian", 0.0)
    # the task heads' kernels: the first carries the SFSMR / SLRM norms of all of them
    penalty = TaskWeightPenalty(**norms, l2=spec.weight_decay) if any(norms.values()) else None
    head_reg = {t: (penalty if i == 0 and penalty else reg) for i, t in enumerate(tasks)}
    lel = spec.label_embedding
    if spec.regression and (lel or kind == "ssr"):
        raise ValueError("regression heads work with plain heads: not with ssrnet or LEL-LTN")
    width = {t: lel or spec.tasks[t] for t in tasks}  # what each head's last layer produces
    feats, logits = [], []
    if kind == "ssr":
        by_task = ssrnet_heads(x, spec.tasks)
        logits = [by_task[t] for t in tasks]
        if fr:
            raise ValueError("the manifold regularisers need task heads; use another --model than ssrnet")
    elif kind == "conv":
        trunk = trunk_function(spec.backbone)(x, spec)
        pooled = L.GlobalAveragePooling2D(name="trunk_pool")(trunk) if laplacian else None
        for t in tasks:
            h = L.Dropout(0.5, name=f"{t}_dropout")(trunk) if spec.dropout else trunk
            h = L.Conv2D(width[t], 3, padding="same", kernel_regularizer=head_reg[t], name=f"{t}_conv")(h)
            logits.append(L.GlobalAveragePooling2D(name=f"{t}_proj" if lel else t)(h))
            feats.append(pooled)
    else:
        x = trunk_function(spec.backbone)(x, spec)
        # One ReLU (the reference applied a second, no-op ReLU).
        x = L.Dense(1024, kernel_regularizer=reg, name="common_fc")(x)
        if spec.bn:
            x = L.BatchNormalization(name="common_bn")(x)
        x = L.Activation("relu", name="common_relu")(x)
        if spec.dropout:
            x = L.Dropout(0.5, name="common_dropout")(x)
        branches = []
        for t in tasks:
            h = L.Dense(128, kernel_regularizer=head_reg[t], name=f"{t}_fc")(x)
            if spec.bn:
                h = L.BatchNormalization(name=f"{t}_bn")(h)
            branches.append(L.Activation("relu", name=f"{t}_relu")(h))
        feats = list(branches)
        if spec.cross_stitch and len(tasks) > 1:
            branches = CrossStitch(name="cross_stitch")(branches)
        for t, h in zip(tasks, branches):
            if spec.dropout:
                h = L.Dropout(0.5, name=f"{t}_dropout")(h)
            logits.append(L.Dense(width[t], kernel_regularizer=reg, name=f"{t}_proj" if lel else t)(h))
    ltn = {}
    if lel:
        if kind == "ssr":
            raise ValueError("LEL-LTN needs classification heads; use another --model than ssrnet")
        out = LabelEmbedding([spec.tasks[t] for t in tasks], lel, name="label_embedding")(logits)
        logits = [L.Activation("linear", name=t)(z) for t, z in zip(tasks, out[:len(tasks)])]
        expected = dict(zip(tasks, out[len(tasks):]))
        for t in tasks:  # label transfer network: the other tasks' expected label embeddings -> task t
            others = [expected[u] for u in tasks if u != t]
            if not others:
                continue
            z = L.Concatenate(name=f"{t}_ltn_input")(others) if len(others) > 1 else others[0]
            z = L.Dense(64, activation="relu", name=f"{t}_ltn_hidden")(z)
            ltn[f"{t}_ltn_prediction"] = L.Activation("softmax", dtype="float32", name=f"{t}_ltn_prediction")(
                L.Dense(spec.tasks[t], name=f"{t}_ltn")(z))
    # float32 outputs and penalties keep mixed-precision training numerically safe
    preds = [L.Rescaling(spec.regression[t], dtype="float32", name=f"{t}_prediction")(z) if t in spec.regression
             else L.Activation("softmax", dtype="float32", name=f"{t}_prediction")(z) for t, z in zip(tasks, logits)]
    if laplacian:
        preds = FeatureRegularization(laplacian, fr.get("sigma", 0.5), dtype="float32",
                                      name="feature_regularization")(feats + preds)
    model = keras.Model(inp, {**{f"{t}_prediction": p for t, p in zip(tasks, preds)}, **ltn},
                        name=f"{'-'.join(tasks)}_{spec.backbone}")
    if penalty is not None:
        penalty.attach([model.get_layer(f"{t}_{'conv' if kind == 'conv' else 'fc'}").kernel for t in tasks])
    _load_pretrained(model, spec)
    return model


def _load_pretrained(model: keras.Model, spec: ModelSpec) -> None:
    """``--weights``: a .keras model of this project (layers matched by name) or the backbone's released
    weights, through the loader its registry entry names."""
    if str(spec.weights).endswith(".keras"):  # warm start from a model of this project (a run or the shipped one)
        load_matching_weights(model, spec.weights)
        return
    if spec.weights == "none" or BACKBONES[spec.backbone].own_weights:  # loaded in their trunks
        return
    loader = weight_loader(spec.backbone)
    if loader is None:
        raise WeightsError(f"{spec.backbone} has no released weights to load; use --weights none or a .keras model")
    loader(model, spec.weights, spec)


def load_matching_weights(model: keras.Model, path: str) -> int:
    """Copy the weights of every layer of the saved model at ``path`` whose name and shapes match.

    Heads of tasks the saved model lacks (or with other class counts) keep their initialisation.
    Returns the number of layers copied; a ``WeightsError`` when none fits.
    """
    try:
        source = keras.models.load_model(path, compile=False)
    except Exception as exc:  # zip / deserialisation errors come in many types
        raise WeightsError(f"{path}: not a loadable Keras model ({type(exc).__name__})") from None
    names = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in model.layers:
        other = names.get(layer.name)
        if other is None or not layer.weights:
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            copied += 1
    if not copied:
        raise WeightsError(f"{path}: no layer of it fits this model (another backbone or input size?)")
    log.warning("started from %s: %d of %d layers with weights", path, copied,
                sum(1 for la in model.layers if la.weights))
    return copied


def shift_logits(model: keras.Model, task: str, offsets) -> None:
    """Add ``offsets`` (one per class) to ``task``'s logits, in place: to the bias of the head's last layer
    (``<task>_conv`` before its global average pool, or the dense ``<task>``), so that every copy and
    export of the model carries them. Heads whose logits pass through a label embedding have no such bias."""
    import numpy as np

    names = {layer.name for layer in model.layers}
    if f"{task}_proj" in names or not ({f"{task}_conv", task} & names):
        raise WeightsError(f"the model has no plain softmax head '{task}' whose last bias could carry the offsets")
    layer = model.get_layer(f"{task}_conv" if f"{task}_conv" in names else task)
    kernel, bias = layer.get_weights()
    offsets = np.asarray(offsets, bias.dtype)
    if offsets.shape != bias.shape:
        raise WeightsError(f"'{task}': {len(offsets)} offsets for {len(bias)} classes")
    layer.set_weights([kernel, bias + offsets])


def feature_model(model: keras.Model, tasks) -> keras.Model:
    """Model with outputs ``<task>_features``, ``<task>_logits``, ``<task>_probs`` per task."""
    outputs = {}
    for t in tasks:
        names = {layer.name for layer in model.layers}
        if f"{t}_fc" in names:
            feat = model.get_layer(f"{t}_fc").output
        else:  # conv backbones: pooled trunk features are shared by the tasks
            trunk = next(n for n in (FEATURE_LAYER, SSR_FEATURE_LAYER) if n in names)
            feat = keras.layers.GlobalAveragePooling2D()(model.get_layer(trunk).output)
        outputs[f"{t}_features"] = feat
        outputs[f"{t}_logits"] = model.get_layer(t).output
        outputs[f"{t}_probs"] = model.get_layer(f"{t}_prediction").output
        if f"{t}_ltn_prediction" in names:  # LEL-LTN: the label transfer network's labels for t
            outputs[f"{t}_ltn_probs"] = model.get_layer(f"{t}_ltn_prediction").output
    return keras.Model(model.input, outputs)


def trunk_layers(model: keras.Model, tasks) -> list:
    """Layers of the backbone (what ``--is_freezing`` freezes): everything but preprocessing and heads."""
    head_prefixes = tuple(tasks) + ("common_", "cross_stitch", "feature_regularization", "preprocess",
                                    "image", "trunk_pool", "label_embedding")
    return [layer for layer in model.layers if not layer.name.startswith(head_prefixes)]
