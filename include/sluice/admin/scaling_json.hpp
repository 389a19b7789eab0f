#pragma once
// GET /scaling: every service's scaling signal as JSON (README "The scaling signal"), with its
// inputs and the model's arithmetic. Fields may be added, never renamed: scalers read them.

#include <string>
#include <vector>

#include "sluice/scaling/assessment.hpp"

namespace sluice {

std::string render_scaling_json(const std::vector<scaling::Assessment>& services);

}  // namespace sluice
