#ifndef SCOREKIT_H
#define SCOREKIT_H
#include "core.h"
#include "rng.h"
#include "tensor.h"
#endif
