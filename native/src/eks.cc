// Fused efficient-knowledge-separation (EKS) expert convolution. Filled in by the LoRKD core.
#include "common.h"
