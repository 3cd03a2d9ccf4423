"""Onboard inference: the live loop and watchdog, controllers, replay and drawing."""
