/* sdrt/canny.h - the Canny edge detector as OpenCV's cv2.Canny(image, low,
 * high) computes it with the defaults apertureSize 3 and L2gradient false,
 * pixel for pixel: 3x3 Sobel derivatives with replicated borders, the L1
 * magnitude |dx| + |dy| (for several channels, per pixel the channel of the
 * largest magnitude, the first on ties), non-maximum suppression with
 * OpenCV's fixed-point tan(22.5 deg) sector test (ties broken the way it
 * does: "m > previous and m >= next" across the gradient), floor()ed
 * thresholds (swapped when low > high), and hysteresis over 8-connected
 * neighbours. The ControlNet "canny" preprocessor of diffusers' examples
 * runs cv2.Canny on the RGB image and repeats the edge map on 3 channels.
 *
 * Pure function, thread-safe; the caller owns every buffer. */
#ifndef SDRT_CANNY_H
#define SDRT_CANNY_H

#include <stdint.h>

/* src: [h, w, channels] 8-bit, channels 1..4; dst: [h, w] with 255 on edges
 * and 0 elsewhere. Returns 0, or -1 (bad size or out of memory). */
int sdrt_canny(const uint8_t *src, int w, int h, int channels, double low, double high, uint8_t *dst);

#endif
