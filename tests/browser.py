"""A real headless browser for the webmail tests: Debian's Chromium driven
through chromium-driver by Selenium (both installed by scripts/setup.sh;
nothing is downloaded at run time), and what a user does in Snappymail.

Chromium runs with a fresh profile and the flags that
keep it from calling the Internet (this machine has none: without them it
floods refused connections)."""
import contextlib
import os
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import (ElementClickInterceptedException,
                                        StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage', '--window-size=1400,1000',
         # the partition's certificate is self-signed
         '--ignore-certificate-errors']
TIMEOUT = 30


def executables():
    """``(chromium, chromedriver)`` from PATH, or an AssertionError that
    says what to install."""
    found = (shutil.which('chromium'), shutil.which('chromedriver'))
    if None in found:
        raise AssertionError('chromium and chromedriver are not installed '
                             '(Debian packages chromium, chromium-driver: '
                             'run scripts/setup.sh)')
    return found


@contextlib.contextmanager
def chromium(log_path=None):
    """A Chromium WebDriver with a fresh profile, closed at the end."""
    binary, driver = executables()
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    options = webdriver.ChromeOptions()
    for flag in FLAGS + ['--user-data-dir=' + profile]:
        options.add_argument(flag)
    options.binary_location = binary
    # Selenium Manager would look for a driver online: it is given here.
    # Chromium's caches (fontconfig, dconf) go to the profile, not the
    # home of whoever runs the tests.
    environment = dict(os.environ, HOME=profile,
                       XDG_CACHE_HOME=os.path.join(profile, 'cache'),
                       XDG_CONFIG_HOME=os.path.join(profile, 'config'))
    service = Service(executable_path=driver, env=environment,
                      log_output=log_path or os.devnull)
    browser = webdriver.Chrome(service=service, options=options)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Snappymail:
    """What a user does in Snappymail 2.38, through its page."""

    def __init__(self, browser, url):
        self.browser = browser
        self.url = url

    # -- waiting --------------------------------------------------------------
    def wait(self, condition, timeout=TIMEOUT, message=''):
        return WebDriverWait(self.browser, timeout).until(condition, message)

    def visible(self, selector, timeout=TIMEOUT):
        return self.wait(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, selector)), timeout,
            'nothing visible matches %s' % selector)

    def click(self, selector, timeout=TIMEOUT):
        """Click the first visible ``selector``, again while a fading popup
        covers it."""
        def clicked(browser):
            for element in browser.find_elements(By.CSS_SELECTOR, selector):
                try:
                    if element.is_displayed():
                        element.click()
                        return True
                except (ElementClickInterceptedException,
                        StaleElementReferenceException):
                    return False
            return False
        self.wait(clicked, timeout, 'could not click %s' % selector)

    def texts(self, selector):
        result = []
        for element in self.browser.find_elements(By.CSS_SELECTOR, selector):
            try:
                if element.is_displayed():
                    result.append(element.text)
            except StaleElementReferenceException:
                pass
        return result

    # -- logging in and out ---------------------------------------------------
    def open(self):
        self.browser.get(self.url)
        self.visible('input[name=Email]')

    def submit_login(self, email, password):
        self.open()
        for name, value in (('Email', email), ('Password', password)):
            field = self.browser.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        self.click('button.buttonLogin')

    def login(self, email, password):
        """Log in; wait for the folder list."""
        self.submit_login(email, password)
        try:
            self.visible('#rl-left .b-folders', 60)
        except TimeoutException:
            raise AssertionError('login of %s failed: %s' % (
                email, self.login_error() or 'no folder list'))

    def login_error(self, timeout=0):
        """The error shown on the login page ('' when none)."""
        if timeout:
            try:
                self.visible('#rl-content .alert', timeout)
            except TimeoutException:
                return ''
        # without the alert's close button (×)
        return ' '.join(self.texts('#rl-content .alert')).replace(
            '\u00d7', '').strip()

    def identity_popup(self, timeout):
        """Whether Snappymail opens its "Edit Identity" dialog within
        ``timeout`` seconds (it would, a second after the login, for an
        identity without a name)."""
        try:
            self.visible('#V-PopupsIdentity input[type=text]', timeout)
            return True
        except TimeoutException:
            return False

    def logout(self):
        self.click('#top-system-dropdown-id')
        self.click('a[data-i18n="GLOBAL/LOGOUT"]')
        self.visible('input[name=Email]')

    # -- mail -----------------------------------------------------------------
    def folder(self, name):
        """Open a folder of the folder list by its shown name."""
        selector = '#rl-left .b-folders a.selectable'
        for element in self.browser.find_elements(By.CSS_SELECTOR, selector):
            if element.is_displayed() and element.text.strip() == name:
                element.click()
                return
        raise AssertionError('no folder %r in %s' % (
            name, self.texts(selector)))

    def message_subjects(self):
        return self.texts('#V-MailMessageList .messageListItem .subjectParent')

    def wait_for_message(self, subject, timeout=60):
        """Wait until ``subject`` is in the message list; meanwhile its
        refresh button is pressed every few seconds, as a user would (more
        often would abort each reload before it ends)."""
        pressed = [time.time()]

        def listed(browser):
            if subject in self.message_subjects():
                return True
            if time.time() - pressed[0] > 5:
                pressed[0] = time.time()
                for button in browser.find_elements(
                        By.CSS_SELECTOR,
                        '#V-MailMessageList a[data-bind="click: reload"]'):
                    if button.is_displayed():
                        button.click()
            return False
        self.wait(listed, timeout, 'no message %r in the list: %s' % (
            subject, self.message_subjects()))

    def open_message(self, subject):
        """Open a message of the list; its body text."""
        self.select_message(subject)
        self.wait(lambda b: subject in ' '.join(
            self.texts('.messageItemHeader .subject')), TIMEOUT,
            'message %r not shown' % subject)
        body = self.visible('#V-MailMessageView .bodyText')
        self.wait(lambda b: body.text.strip(), TIMEOUT, 'empty message body')
        return body.text

    def compose(self, to, subject, body):
        """Write a message in the compose window and send it; wait for the
        window to close (sent, and its copy saved in Sent)."""
        self.click('#rl-left .buttonCompose')
        popup = '#V-PopupsCompose'
        self.visible(popup + ' .emailaddresses input').send_keys(to + ',')
        self.visible(popup + ' input[name=subject]').send_keys(subject)
        editor = self.visible(popup + ' [contenteditable=true]')
        editor.click()
        editor.send_keys(body)
        self.click(popup + ' header a.btn[data-bind*=sendCommand]')
        self.wait(EC.invisibility_of_element_located(
            (By.CSS_SELECTOR, popup)), 60, 'the message was not sent: %s'
            % ' '.join(self.texts(popup + ' .alert, .tooltip')))

    def select_message(self, subject):
        """Click a message of the list (which opens it)."""
        for item in self.browser.find_elements(
                By.CSS_SELECTOR, '#V-MailMessageList .messageListItem'):
            if item.is_displayed() and subject in item.text:
                item.click()
                return
        raise AssertionError('no message %r in the list' % subject)

    def _move_with(self, subject, command):
        self.select_message(subject)
        self.click('#V-MailMessageList a[data-bind*="%s"]:not(.disabled)'
                   % command)
        self.wait(lambda b: subject not in self.message_subjects(), TIMEOUT,
                  'message %r still in the list' % subject)

    def mark_as_spam(self, subject):
        """The list's spam button: the message goes to the Spam folder."""
        self._move_with(subject, 'command: spamCommand')

    def mark_as_not_spam(self, subject):
        """In the Spam folder, the "not spam" button: back to the inbox."""
        self._move_with(subject, 'command: notSpamCommand')

    # -- settings -------------------------------------------------------------
    def change_password(self, current, new):
        """Change the password on the settings page; the status shown."""
        self.click('#top-system-dropdown-id')
        self.click('a[data-i18n="TITLES/SETTINGS"]')
        self.click('a[href$="/settings/password"]')
        form = '.mailbundle-change-password'
        for name, value in (('current-password', current),
                            ('new-password', new),
                            ('new-password-again', new)):
            self.visible('%s input[name=%s]' % (form, name)).send_keys(value)
        self.click(form + ' button[name=change-password]')
        status = self.wait(lambda b: ' '.join(
            self.texts(form + ' .mailbundle-password-status')).strip(), 60,
            'no answer to the password change')
        return status

    def redirect_all_mail(self, to):
        """Settings, Filters: in the script Snappymail edits with its filter
        editor, a filter that forwards all incoming mail to ``to`` (a Sieve
        redirect); the script saved and made the active one."""
        self.click('#top-system-dropdown-id')
        self.click('a[data-i18n="TITLES/SETTINGS"]')
        self.click('a[href$="/settings/filters"]')
        # Snappymail's own script (rainloop.user), listed first
        self.click('.script-item .script-name')
        script = '#V-PopupsSieveScript'
        self.click(script + ' a[data-bind*="addFilter"]')
        popup = '#V-PopupsFilter'
        self.visible(popup + ' input[data-bind="value: name"]').send_keys(
            'forward to ' + to)
        Select(self.visible(popup + ' select[data-bind*="actionTypeOptions"]')
               ).select_by_value('Forward')
        self.visible(popup + ' input[data-bind="value: actionValue"]'
                     ).send_keys(to)
        self.click(popup + ' footer button.buttonSave')
        self.wait(EC.invisibility_of_element_located(
            (By.CSS_SELECTOR, popup)), TIMEOUT, 'the filter popup stays')
        self.visible(script + ' .filter-item')
        self.click(script + ' footer a.buttonSave')
        # saved: the "changes need to be saved" notice goes, no error
        self.wait(lambda b: not self.texts(
            script + ' .alert[data-bind*="hasChanges"]') and not self.texts(
            script + ' .alert-error'), TIMEOUT, 'the script was not saved: %s'
            % ' '.join(self.texts(script + ' .alert')))
        self.click(script + ' header a.close')
        self.wait(EC.invisibility_of_element_located(
            (By.CSS_SELECTOR, script)), TIMEOUT, 'the script popup stays')
        # made the active script: its mark in the list turns full
        toggle = '.script-item div.e-action.fontastic'
        if self.texts(toggle)[0] != '\u29bf':
            self.click(toggle)
        self.wait(lambda b: self.texts(toggle)[:1] == ['\u29bf'], TIMEOUT,
                  'the script is not active: %s' % self.texts(toggle))

    # -- the admin panel ------------------------------------------------------
    def admin_login(self, login, password, expect_error=False):
        self.visible('input[name=Login]')
        for name, value in (('Login', login), ('Password', password)):
            field = self.browser.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        self.click('button.buttonLogin')
        if not expect_error:
            try:
                self.visible('#V-AdminMenu', 60)
            except TimeoutException:
                raise AssertionError('admin login failed: %s' % (
                    self.login_error() or 'no admin menu'))

    def admin_domains(self):
        """The domains listed on the admin panel's Domains page."""
        self.click('a[href$="/domains"]')
        self.visible('.domain-name')
        return self.texts('.domain-name')

    def back_to_mail(self):
        self.click('#rl-settings a[data-i18n="GLOBAL/BACK"], '
                   'a[data-bind*="backToInbox"]')
        self.visible('#rl-left .b-folders')
