"""The closed loop: feedback → preference dataset → DPO → win rate vs production → gate → promote."""
