"""Facts of the Visual Domain Decathlon (PAPER.md section 5 and 6), as plain constants.

Domain names are the devkit's folder names. The alphabetical index of a domain defines its id
prefix in the devkit (category id = 10,000,000 * (index + 1) + class + 1).
"""

from __future__ import annotations

NUM_CLASSES: dict[str, int] = {
    "aircraft": 100,
    "cifar100": 100,
    "daimlerpedcls": 2,
    "dtd": 47,
    "gtsrb": 43,
    "imagenet12": 1000,
    "omniglot": 1623,
    "svhn": 10,
    "ucf101": 101,
    "vgg-flowers": 102,
}
DOMAINS: tuple[str, ...] = tuple(sorted(NUM_CLASSES))

# Top-1 accuracy (%) of the ResNet-26 fine-tuned per domain: the score's baseline (section 6).
BASELINE_ACCURACY: dict[str, float] = {
    "imagenet12": 59.87,
    "aircraft": 60.34,
    "cifar100": 82.12,
    "daimlerpedcls": 92.82,
    "dtd": 55.53,
    "gtsrb": 97.53,
    "vgg-flowers": 81.41,
    "omniglot": 87.69,
    "svhn": 96.55,
    "ucf101": 51.20,
}

# Per-domain RGB normalisation of the official code (section 5).
MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "aircraft": ((0.4798, 0.5107, 0.5344), (0.2107, 0.2051, 0.2373)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "daimlerpedcls": ((0.4820, 0.4820, 0.4820), (0.2361, 0.2361, 0.2361)),
    "dtd": ((0.5270, 0.4703, 0.4240), (0.2523, 0.2409, 0.2499)),
    "gtsrb": ((0.3392, 0.3118, 0.3205), (0.2756, 0.2658, 0.2709)),
    "imagenet12": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "omniglot": ((0.0810, 0.0810, 0.0810), (0.2705, 0.2705, 0.2705)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "ucf101": ((0.4995, 0.4988, 0.4998), (0.1090, 0.1081, 0.1068)),
    "vgg-flowers": ((0.4341, 0.3831, 0.2971), (0.2851, 0.2384, 0.2640)),
}
