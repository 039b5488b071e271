"""Database models, one module per concept."""
from models.users import ApiToken, User
from models.channels import Channel
from models.deliveries import Attempt, Delivery, DeliveryStatus, Event

__all__ = ["ApiToken", "Attempt", "Channel", "Delivery", "DeliveryStatus", "Event", "User"]
