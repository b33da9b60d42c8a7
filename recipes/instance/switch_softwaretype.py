"""Run the instance profile of the partition's software type.

The root instance profile reads the partition's parameters in a section that
must be named ``[slap-configuration]`` (recipe ``slapos.mailbundle:slapconfiguration``)
and maps each software type to a profile:

  [switch-softwaretype]
  recipe = slapos.mailbundle:switch-softwaretype
  default = instance-default:output      (section:option giving the profile)
  relay = instance-relay:output

The profile runs as a sub-buildout of this one, in the same directory, with
the same ``[slap-connection]`` and the values of ``[slap-configuration]``
(as data: the master is not asked twice). Only the selected type's section
is initialised, so the other types' profiles are never rendered.

Unlike ``slapos.cookbook:switch-softwaretype``, this passes options as
strings, which the zc.buildout from PyPI requires.
"""
import logging

from zc.buildout import UserError
from zc.buildout.buildout import Buildout, MissingOption, MissingSection

SHARED_BUILDOUT_OPTIONS = (
    'offline', 'verbosity', 'newest', 'directory',
    'eggs-directory', 'develop-eggs-directory', 'allow-picked-versions',
)


# What the sub-buildout receives from this one, as data.
PASSED_SECTIONS = ('slap-connection', 'slap-configuration')


class SubBuildout(Buildout):

    def __init__(self, main_buildout, profile, installed):
        self._logger = main_buildout._logger
        self._log_level = getattr(main_buildout, '_log_level', logging.INFO)
        options = [('buildout', 'installed', installed)]
        for key in SHARED_BUILDOUT_OPTIONS:
            if key in main_buildout['buildout']:
                options.append(('buildout', key, main_buildout['buildout'][key]))
        data = {section: {key: value
                          for key, value in main_buildout[section].items()
                          if key != 'recipe'}
                for section in PASSED_SECTIONS}
        for section, values in data.items():
            options.extend((section, key, '') for key in values)
        Buildout.__init__(self, profile, options)
        # Set once parsed: a value given as an option above would go through
        # ${...} substitution (there is no escape for it in zc.buildout from
        # PyPI), and parameters are data, never buildout syntax.
        for section, values in data.items():
            for key, value in values.items():
                self[section][key] = value

    def _setup_logging(self):
        """Logging is set up by the main buildout already."""


class Recipe:

    def __init__(self, buildout, name, options):
        self.buildout = buildout
        self.name = name
        try:
            software_type = buildout['slap-configuration']['slap-software-type']
        except (MissingSection, MissingOption):
            raise UserError(
                "[%s] needs the partition's parameters in a section named "
                "[slap-configuration] (recipe slapos.mailbundle:slapconfiguration)"
                % name)
        try:
            if software_type == 'recipe':   # the recipe's option, no type
                raise MissingOption(software_type)
            reference = options[software_type]
        except MissingOption:
            known = sorted(k for k in options.keys() if k != 'recipe')
            raise UserError(
                "software type %r is not one of this software release's "
                "types: %s" % (software_type, ', '.join(known)))
        try:
            section, key = reference.split(':')
        except ValueError:
            raise UserError(
                "[%s] %s = %r: give the profile as section:option, for "
                "example instance-default:output" % (name, software_type,
                                                      reference))
        self.software_type = software_type
        self.profile = buildout[section][key]

    def install(self):
        SubBuildout(self.buildout, self.profile,
                    '.installed-%s.cfg' % self.name).install([])
        return []

    update = install
