"""The one library package that imports the simulator: simulator set-up, closed-loop trials, the demo."""
