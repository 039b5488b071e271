"""Database models, one module per concept."""
from models.users import ApiToken, User
from models.channels import Channel
from models.deliveries import Attempt, Delivery, DeliveryStatus, Event
from models.ledger import IdempotencyKey, Order, OrderStatus, Product, ReportRun, Setting

__all__ = ["ApiToken", "Attempt", "Channel", "Delivery", "DeliveryStatus", "Event", "IdempotencyKey", "Order",
           "OrderStatus", "Product", "ReportRun", "Setting", "User"]
