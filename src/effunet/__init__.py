"""effunet: does an Efficient-UNet segment medical images better and train faster than a U-Net?"""

from effunet.errors import EffunetError

__all__ = ["EffunetError"]
__version__ = "0.1.0"
