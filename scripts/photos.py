"""Real photographs for the oracles of the ImageNet trunks: scikit-image's sample
photographs (in the test venv), resized and cropped, and distortions of them (blur,
noise, JPEG, shift, tone), all as 8-bit RGB arrays (H x W x 3)."""

import os

import cv2
import numpy as np
import skimage
import torch

DATA = os.path.join(os.path.dirname(skimage.__file__), "data")


def photo(name, h, w, scale=0.5, top=0, left=0):
    """`name` from scikit-image's data, resized by `scale` (area or cubic), cropped to h x w."""
    bgr = cv2.imread(os.path.join(DATA, name), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    if scale != 1:
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    assert rgb.shape[0] >= top + h and rgb.shape[1] >= left + w, (name, rgb.shape, h, w)
    return np.ascontiguousarray(rgb[top : top + h, left : left + w])


def blur(u8, sigma):
    return cv2.GaussianBlur(u8, (0, 0), sigma)


def noise(u8, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(u8 + rng.normal(0, sigma * 255, u8.shape)), 0, 255).astype(np.uint8)


def jpeg(u8, quality):
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def tone(u8, gain, offset):
    return np.clip(np.round(u8.astype(np.float64) * gain + offset), 0, 255).astype(np.uint8)


def to_tensor(u8):
    """[-1, 1] float32, 1 x 3 x H x W, as the reference's im2tensor makes it."""
    return torch.from_numpy(u8.astype(np.float64) / 127.5 - 1).float().permute(2, 0, 1)[None].contiguous()


def write_png(path, u8):
    cv2.imwrite(path, np.ascontiguousarray(u8[:, :, ::-1]))
