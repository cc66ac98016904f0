package main

// The periph.io drivers of a Raspberry Pi, and no others: host.Init would
// link the drivers of every board periph.io knows (Allwinner, BeagleBone,
// C.H.I.P., ODROID, Pine64, 1-wire over netlink), a quarter of a megabyte
// that a Pi never loads.
//
// On a Pi, driverreg.Init loads ioctl-gpio (the kernel's GPIO character
// device, /dev/gpiochip0), then bcm283x-gpio, which registers GPIO0 to
// GPIO46 under those names in gpioreg: it drives them through /dev/gpiomem,
// or through their ioctl-gpio line when that cannot be mapped, and gives
// hardware PWM where the pin and the permissions allow it. Then rpi names
// the header pins (P1_12 and so on). bcm283x also brings in the sysfs
// drivers it falls back on. Elsewhere bcm283x and rpi stay out of the way
// (they register only on ARM, and load only where the device tree says
// Broadcom), so the program runs with -simulate on any machine.
import (
	_ "periph.io/x/host/v3/bcm283x"
	_ "periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/rpi"
)
