"""Camera frames for the benchmarks: the astronaut portrait (public domain, shipped with
scikit-image) centred in the frame and drifting a few pixels, so tracking has work to do."""
import cv2
import numpy as np
import skimage.data


def drifting_face_frames(width, height, n):
    face = np.ascontiguousarray(skimage.data.astronaut()[0:250, 100:350])
    side = int(0.8 * min(width, height))
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 200, np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas[y0:y0 + side, x0:x0 + side] = face
    for i in range(n):
        shift = np.float32([[1, 0, 8 * np.sin(i / 15)], [0, 1, 5 * np.cos(i / 20)]])
        yield cv2.warpAffine(canvas, shift, (width, height), borderMode=cv2.BORDER_REPLICATE)
